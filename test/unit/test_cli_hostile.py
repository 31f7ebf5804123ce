"""space-clip-predict under hostile input: corrupt files among good ones, bad output folders,
unlistable sub-folders, pixel bombs, and writes that never leave a half-written file behind."""

from __future__ import annotations

import errno
import io
import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from space_clip_ros.io.atomic import atomic_path, default_file_mode
from space_clip_ros.io.depth_files import read_npy, write_npy
from space_clip_ros.predict import main

RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def checkpoint(tiny_checkpoint):
    """The session's tiny checkpoint (conftest.py): these tests only read it."""
    return tiny_checkpoint


def _good(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data))
    return struct.pack(">I", len(data)) + kind + data + crc


def _png_header_claiming(width: int, height: int) -> bytes:
    """A 57-byte PNG whose header claims width x height RGB pixels (a pixel bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _dds_unknown_pixel_format() -> bytes:
    """A DDS header with an unknown FourCC: Pillow raises NotImplementedError (not OSError)."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0) + b"\0" * 44
    pixel_format = struct.pack("<2I", 32, 0x4) + b"ABCD" + b"\0" * 20
    return b"DDS " + header + pixel_format + b"\0" * 84


def _blp2_unknown_encoding() -> bytes:
    """A BLP2 file with encoding 9: Pillow raises BLPFormatError (a NotImplementedError)."""
    header = b"BLP2" + struct.pack("<I", 1) + bytes([9, 0, 0, 0]) + struct.pack("<II", 4, 4)
    return header + b"\0" * 2000


def _run(*argv: object) -> int:
    return main([str(a) for a in argv] + ["--device", "cpu", "--no-progress"])


def test_a_folder_of_corrupt_files_among_good_ones_writes_the_good_and_lists_the_bad(
    tmp_path, checkpoint, caplog
):
    cam = tmp_path / "cam"
    for i, name in enumerate(("a.png", "m.jpg", "sub/z.png")):
        _good(cam / name, seed=i)
    truncated = (cam / "a.png").read_bytes()
    bad = {
        "truncated.png": truncated[: len(truncated) // 2],
        "random.jpg": np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "empty.png": b"",
        "dds_inside.jpg": _dds_unknown_pixel_format(),
        "blp_inside.png": _blp2_unknown_encoding(),
        "bomb.png": _png_header_claiming(13000, 13000),
    }
    for name, data in bad.items():
        (cam / name).write_bytes(data)
    (cam / "x.png").mkdir()  # a folder with an image's name is a folder, not an image
    out = tmp_path / "out"

    with caplog.at_level(logging.ERROR):
        rc = _run(cam, "-r", "--checkpoint", checkpoint, "-o", out)

    assert rc == 1
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_depth.npy"))
    assert written == ["cam/a_depth.npy", "cam/m_depth.npy", "cam/sub/z_depth.npy"]
    for path in written:
        assert read_npy(out / path).shape == (24, 40)
    reasons = {"truncated.png": "truncated", "bomb.png": "too_large"}
    for name in bad:
        reason = reasons.get(name, "undecodable")  # DDS and BLP bytes never reach a decoder
        assert f"{cam / name}: cannot read image ({reason}:" in caplog.text, name
    assert "13000x13000 = 169000000 pixels, above --max-pixels=50000000" in caplog.text
    assert "6 input(s) skipped" in caplog.text
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "temporary files left"


def test_max_pixels_is_a_flag_and_the_one_limit(tmp_path, checkpoint, caplog):
    _good(tmp_path / "cam" / "a.png", seed=1)  # 24 x 40 = 960 pixels
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert (
            _run(tmp_path / "cam", "--checkpoint", checkpoint, "-o", out, "--max-pixels", 900) == 1
        )
    assert "image is 40x24 = 960 pixels, above --max-pixels=900; raise it" in caplog.text
    assert not list(out.rglob("*.npy"))
    assert _run(tmp_path / "cam", "--checkpoint", checkpoint, "-o", out, "--max-pixels", 960) == 0
    assert _run(tmp_path / "cam", "-o", out, "--max-pixels", 0) == 2


def test_an_output_dir_that_is_a_file_is_a_usage_error_before_anything_runs(
    tmp_path, checkpoint, capsys
):
    _good(tmp_path / "a.png", seed=1)
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    assert _run(tmp_path / "a.png", "--checkpoint", checkpoint, "-o", target) == 2
    err = capsys.readouterr().err
    assert f"{target}: --output-dir: exists and is not a folder" in err and "Fix:" in err
    assert target.read_text() == "keep me"
    below_a_file = target / "deeper"
    assert _run(tmp_path / "a.png", "--checkpoint", checkpoint, "-o", below_a_file) == 2
    err = capsys.readouterr().err
    assert f"{below_a_file}: --output-dir: exists and is not a folder ({target} is a file)" in err


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root writes into read-only folders")
def test_an_output_dir_without_write_permission_is_a_usage_error(tmp_path, checkpoint, capsys):
    _good(tmp_path / "a.png", seed=1)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert _run(tmp_path / "a.png", "--checkpoint", checkpoint, "-o", locked) == 2
    finally:
        locked.chmod(0o700)
    assert f"{locked}: --output-dir: cannot write there" in capsys.readouterr().err
    assert not list(locked.iterdir())


def test_an_unlistable_sub_folder_is_reported_and_the_rest_is_written(
    tmp_path, checkpoint, caplog, monkeypatch
):
    """Path.glob skipped such folders silently. Root reads every folder, so the refusal is
    injected at os.scandir, the call os.walk lists folders with."""
    cam = tmp_path / "cam"
    _good(cam / "a.png", seed=1)
    _good(cam / "locked" / "hidden.png", seed=2)
    real_scandir = os.scandir

    def refusing_scandir(path=None):
        if Path(path) == cam / "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert _run(cam, "-r", "--checkpoint", checkpoint, "-o", out) == 1
    assert f"{cam / 'locked'}: cannot list the folder (Permission denied); skipped" in caplog.text
    assert (out / "cam" / "a_depth.npy").is_file()


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root lists folders without read permission")
def test_an_unreadable_sub_folder_for_real(tmp_path, checkpoint, caplog):
    cam = tmp_path / "cam"
    _good(cam / "a.png", seed=1)
    _good(cam / "locked" / "hidden.png", seed=2)
    (cam / "locked").chmod(0)
    try:
        with caplog.at_level(logging.ERROR):
            assert _run(cam, "-r", "--checkpoint", checkpoint, "-o", tmp_path / "out") == 1
    finally:
        (cam / "locked").chmod(0o700)
    assert "cannot list the folder" in caplog.text


def test_an_atomic_write_that_fails_leaves_neither_a_partial_file_nor_a_temporary(tmp_path):
    target = tmp_path / "depth.npy"
    write_npy(target, np.ones((4, 5), np.float32))
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of a new file")
            raise RuntimeError("disk full")
    assert np.array_equal(read_npy(target), np.ones((4, 5), np.float32))  # the old one intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.npy"]
    assert (target.stat().st_mode & 0o777) == default_file_mode()


def test_a_sixteen_bit_grey_png_gives_the_depth_of_its_eight_bit_twin(tmp_path, checkpoint):
    """The node scales 16-bit input by 255/65535; predict used to clip it to white."""
    values = np.random.default_rng(3).integers(0, 65536, (24, 40), dtype=np.uint16)
    eight = np.round(values * (255.0 / 65535.0)).astype(np.uint8)
    Image.fromarray(values).save(tmp_path / "sixteen.png")
    Image.fromarray(eight).save(tmp_path / "eight.png")
    out = tmp_path / "out"
    assert _run(tmp_path / "sixteen.png", tmp_path / "eight.png", "--checkpoint", checkpoint,
                "-o", out, "--npy") == 0  # fmt: skip
    assert np.array_equal(read_npy(out / "sixteen_depth.npy"), read_npy(out / "eight_depth.npy"))


def test_a_jpeg_whose_header_lies_is_skipped_not_predicted_as_a_grey_frame(
    tmp_path, checkpoint, caplog
):
    buf = io.BytesIO()
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 2160, 3840)  # claims 3840x2160
    (tmp_path / "lying.jpg").write_bytes(bytes(data))
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert _run(tmp_path / "lying.jpg", "--checkpoint", checkpoint, "-o", out) == 1
    assert "lying.jpg: cannot read image (truncated:" in caplog.text
    assert "premature end" in caplog.text.lower()
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_a_full_disk_leaves_none_of_an_image_s_files(tmp_path, checkpoint, caplog, monkeypatch):
    """ENOSPC while writing the second of three files: the first (a complete-looking depth PNG)
    must not stay behind; the other image's three files are all written."""
    for name in ("a.png", "b.png"):
        _good(tmp_path / "cam" / name, seed=len(name))
    real_save = np.save

    def save_failing_for_b(file, array, *args, **kwargs):
        if "b_depth.npy" in os.fspath(getattr(file, "name", file)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", save_failing_for_b)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert _run(tmp_path / "cam", "--checkpoint", checkpoint, "-o", out) == 1
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["cam/a_depth.npy", "cam/a_depth.png", "cam/a_preview.png"]
    assert "none written (No space left on device)" in caplog.text


def test_a_huge_backbone_weights_value_is_quoted_not_printed_whole(tmp_path, checkpoint, capsys):
    _good(tmp_path / "a.png", seed=1)
    huge = "x" * 100_000
    rc = _run(tmp_path / "a.png", "--checkpoint", checkpoint, "--backbone-weights", huge)
    err = capsys.readouterr().err
    assert rc == 2 and len(err) < 2_000, (rc, len(err))
    assert "--backbone-weights" in err and "(100002 characters)" in err  # repr: quotes too
