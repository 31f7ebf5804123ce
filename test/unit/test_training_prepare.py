"""training/prepare_kitti.py against a real HTTP server on loopback serving zips it builds."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
import zipfile
from pathlib import Path

import pytest

from training import prepare_kitti as pk

DRIVE = "2011_09_26_drive_0001"
VAL_DRIVE = "2011_09_26_drive_0005"  # the Eigen training drive the default seed holds out
TEST_DRIVE = "2011_09_26_drive_0002"


def _line(drive: str) -> str:
    return (
        f"2011_09_26/{drive}_sync/image_02/data/0000000005.png "
        f"{drive}_sync/proj_depth/groundtruth/image_02/0000000005.png 721.5377\n"
    )


TRAIN_LINE, VAL_LINE = _line(DRIVE), _line(VAL_DRIVE)
TEST_LINE = f"2011_09_26/{TEST_DRIVE}_sync/image_02/data/0000000000.png None 721.5377\n"


def _zip(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path.read_bytes()


@pytest.fixture
def server(tmp_path):
    """Serves {url path: bytes} with Range support; records (path, Range header, bytes sent).

    A path in "redirects" answers 302 to the URL it maps to.
    """
    files: dict[str, bytes] = {}
    redirects: dict[str, str] = {}
    log: list[tuple[str, str, int]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, body: bool) -> None:
            if self.path in redirects:
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                self.end_headers()
                return
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if body:
                # logged before the body goes out: the client may be done with the file (and
                # the test reading the log) before this thread runs another line
                log.append((self.path, self.headers.get("Range", ""), len(data) - start))
                self.wfile.write(data[start:])

        def do_GET(self):
            self._send(True)

        def do_HEAD(self):
            self._send(False)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # serve_forever polls for shutdown() every poll_interval (0.5 s by default: per test)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    build = tmp_path / "build"
    build.mkdir()
    files["/splits/kitti_eigen_train_files_with_gt.txt"] = (TRAIN_LINE + VAL_LINE).encode()
    files["/splits/kitti_eigen_test_files_with_gt.txt"] = TEST_LINE.encode()
    files["/kitti/data_depth_annotated.zip"] = _zip(
        build / "a.zip",
        {f"train/{DRIVE}_sync/proj_depth/groundtruth/image_02/0000000005.png": b"depth" * 1000},
    )
    files["/kitti/raw_data/2011_09_26_calib.zip"] = _zip(
        build / "c.zip", {"2011_09_26/calib_cam_to_cam.txt": b"K: 1 0 0"}
    )
    for drive in (DRIVE, VAL_DRIVE, TEST_DRIVE):
        files[f"/kitti/raw_data/{drive}/{drive}_sync.zip"] = _zip(
            build / f"{drive}.zip",
            {
                f"2011_09_26/{drive}_sync/image_02/data/{i:010d}.png": bytes([i]) * 5000
                for i in range(6)
            },
        )
    yield {
        "files": files,
        "redirects": redirects,
        "log": log,
        "bases": {"kitti": f"{base}/kitti", "splits": f"{base}/splits"},
    }
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_full_run_lays_out_the_tree_and_a_rerun_downloads_nothing(server, tmp_path):
    root = tmp_path / "kitti"
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert (
        root / "raw" / "2011_09_26" / f"{DRIVE}_sync" / "image_02" / "data" / "0000000005.png"
    ).read_bytes() == bytes([5]) * 5000
    assert (root / "raw" / "2011_09_26" / "calib_cam_to_cam.txt").exists()
    assert (
        root
        / "annotated"
        / "train"
        / f"{DRIVE}_sync"
        / "proj_depth"
        / "groundtruth"
        / "image_02"
        / "0000000005.png"
    ).exists()
    splits = root / "splits"
    assert (splits / "kitti_eigen_train_files_with_gt.txt").read_text() == TRAIN_LINE + VAL_LINE
    # the validation list: a whole Eigen training drive, drawn by the default seed
    assert (splits / "kitti_eigen_val.txt").read_text() == VAL_LINE
    assert (splits / "kitti_eigen_train_minus_val.txt").read_text() == TRAIN_LINE
    manifest = json.loads((splits / "kitti_eigen_val.json").read_text())
    assert manifest["groups"] == {"train": [DRIVE], "val": [VAL_DRIVE]}
    assert manifest["seed"] == 20260926
    assert not list((root / "downloads").glob("*.zip")), (
        "archives are deleted after extraction by default"
    )
    fetched = len(server["log"])
    assert fetched == 7  # 2 lists, annotated depth, 1 calibration, 3 drives
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert len(server["log"]) == fetched, "a second run must skip everything already prepared"


def test_a_training_list_sharing_a_drive_with_the_test_list_is_refused_before_downloading(
    server, tmp_path, capsys
):
    server["files"]["/splits/kitti_eigen_test_files_with_gt.txt"] = VAL_LINE.encode()
    root = tmp_path / "kitti"
    argv = ["--root", str(root), "--kitti-url", server["bases"]["kitti"]]
    assert pk.main([*argv, "--splits-url", server["bases"]["splits"]]) == 2
    err = capsys.readouterr().err
    assert f"shares 1 group(s) with splits/kitti_eigen_test_files_with_gt.txt: {VAL_DRIVE}" in err
    assert all(path.startswith("/splits/") for path, _, _ in server["log"]), "no archive fetched"
    assert not (root / "splits" / "kitti_eigen_val.txt").exists()


def test_resumes_a_partial_download_with_http_range(server, tmp_path):
    url_path = f"/kitti/raw_data/{DRIVE}/{DRIVE}_sync.zip"
    data = server["files"][url_path]
    dest = tmp_path / "dl" / f"{DRIVE}_sync.zip"
    dest.parent.mkdir()
    half = len(data) // 2
    (dest.parent / (dest.name + ".part")).write_bytes(data[:half])
    pk.download(server["bases"]["kitti"] + url_path[len("/kitti") :], dest, timeout=5)
    assert dest.read_bytes() == data
    assert server["log"] == [(url_path, f"bytes={half}-", len(data) - half)]
    assert not (dest.parent / (dest.name + ".part")).exists()


def test_corrupted_archive_is_reported_and_moved_aside(server, tmp_path):
    url_path = f"/kitti/raw_data/{DRIVE}/{DRIVE}_sync.zip"
    good = server["files"][url_path]
    server["files"][url_path] = (
        good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:]
    )  # same size, bad CRC
    root = tmp_path / "kitti"
    with pytest.raises(pk.PrepareError, match=r"CRC|not a valid zip") as info:
        pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert f"{DRIVE}_sync.zip" in str(info.value) and "re-run" in str(info.value)
    assert (root / "downloads" / f"{DRIVE}_sync.zip.corrupt").exists()
    assert not (root / ".prepared" / f"{DRIVE}_sync.zip.done").exists()
    server["files"][url_path] = good  # the server is fixed: a re-run completes
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert (root / ".prepared" / f"{DRIVE}_sync.zip.done").exists()


def test_archive_copied_in_by_hand_is_used_without_downloading(server, tmp_path):
    root = tmp_path / "kitti"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "data_depth_annotated.zip").write_bytes(
        server["files"]["/kitti/data_depth_annotated.zip"]
    )
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=True, drives=None)
    assert "/kitti/data_depth_annotated.zip" not in [path for path, _, _ in server["log"]]
    assert (root / "annotated" / "train").is_dir()


def test_dry_run_lists_files_and_disk_without_downloading_archives(server, tmp_path, capsys):
    root = tmp_path / "kitti"
    pk.run(root, server["bases"], timeout=5, dry=True, keep_archives=False, drives=None)
    out = capsys.readouterr().out
    for name in ("data_depth_annotated.zip", "2011_09_26_calib.zip", f"{DRIVE}_sync.zip"):
        assert name in out
    total = sum(len(v) for k, v in server["files"].items() if k.endswith(".zip"))
    assert f"download: {pk._human(total)}" in out and "disk needed" in out
    assert not (root / "downloads").exists()
    assert all(path.startswith("/splits/") for path, _, _ in server["log"]), (
        "only the split lists are fetched"
    )


def test_offline_fails_fast_naming_the_url(tmp_path):
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bases = {
        "kitti": f"http://127.0.0.1:{port}/kitti",
        "splits": f"http://127.0.0.1:{port}/splits",
    }
    start = time.monotonic()
    code = pk.main(
        [
            "--root",
            str(tmp_path / "kitti"),
            "--kitti-url",
            bases["kitti"],
            "--splits-url",
            bases["splits"],
            "--timeout",
            "3",
        ]
    )
    assert code == 1
    assert time.monotonic() - start < 10
    with pytest.raises(pk.PrepareError) as info:
        pk.run(tmp_path / "kitti", bases, timeout=3, dry=False, keep_archives=False, drives=None)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/splits/kitti_eigen_train_files_with_gt.txt" in message
    assert "copy the file by hand" in message


# ------------------------------------------------------------------ supply chain: URLs, sums, zips


@pytest.mark.parametrize(
    "url, accepted",
    [
        ("https://s3.eu-central-1.amazonaws.com/avg-kitti", True),
        ("http://127.0.0.1:8000/kitti", True),  # this machine's loopback: nothing in between
        ("http://localhost/kitti", True),
        ("http://[::1]:81/kitti", True),
        ("http://mirror.example.org/kitti", False),
        ("http://127.0.0.1.example.org/kitti", False),
        ("ftp://mirror.example.org/kitti", False),
        ("file:///etc/passwd", False),
    ],
)
def test_only_https_or_loopback_urls_are_fetched(url, accepted):
    if accepted:
        assert pk.check_url(url) == url
    else:
        with pytest.raises(pk.InsecureURLError, match="not an https URL.*Fix"):
            pk.check_url(url)


def test_a_plain_http_mirror_is_refused_before_anything_is_fetched(tmp_path, capsys):
    root = tmp_path / "kitti"
    code = pk.main(["--root", str(root), "--kitti-url", "http://mirror.example.org/kitti"])
    assert code == 2
    assert "'http://mirror.example.org/kitti' is not an https URL" in capsys.readouterr().err
    assert not root.exists()


def test_a_redirect_to_plain_http_is_refused(server, tmp_path):
    url_path = "/splits/kitti_eigen_train_files_with_gt.txt"
    server["redirects"][url_path] = "http://mirror.example.org/train.txt"
    dest = tmp_path / "train.txt"
    with pytest.raises(pk.InsecureURLError, match="mirror.example.org"):
        pk.download(server["bases"]["splits"] + url_path[len("/splits") :], dest, timeout=5)
    assert not dest.exists()


def _sums(server, wrong: str = "") -> dict[str, str]:
    sums = {
        path.rsplit("/", 1)[1]: hashlib.sha256(data).hexdigest()
        for path, data in server["files"].items()
    }
    if wrong:
        sums[wrong] = "0" * 64
    return sums


def test_archives_are_checked_against_a_user_sha256_file(server, tmp_path, capsys):
    sums = tmp_path / "sums.txt"
    sums.write_text("".join(f"{h}  {name}\n" for name, h in _sums(server).items()))
    root = tmp_path / "kitti"
    bases = server["bases"]
    argv = ["--root", str(root), "--kitti-url", bases["kitti"], "--splits-url", bases["splits"]]
    assert pk.main([*argv, "--sha256-file", str(sums)]) == 0
    assert (root / ".prepared" / f"{DRIVE}_sync.zip.done").exists()

    wrong = tmp_path / "wrong"
    with pytest.raises(pk.PrepareError, match=r"SHA-256 [0-9a-f]{64} differs from the expected"):
        pk.run(
            wrong,
            bases,
            timeout=5,
            dry=False,
            keep_archives=False,
            drives=None,
            checksums=_sums(server, wrong="2011_09_26_calib.zip"),
        )
    assert (wrong / "downloads" / "2011_09_26_calib.zip.corrupt").exists()

    sums.write_text("not a checksum line\n")
    assert pk.main([*argv, "--sha256-file", str(sums)]) == 2
    assert (
        "line 1: 'not a checksum line' is not '<sha256>  <file name>'" in capsys.readouterr().err
    )


def test_a_member_that_would_land_outside_the_target_is_refused_and_nothing_extracted(tmp_path):
    for evil in ("../escaped.txt", "/abs/escaped.txt", "raw/../../escaped.txt"):
        archive = tmp_path / "evil.zip"
        _zip(archive, {"raw/fine.txt": b"ok", evil: b"owned"})
        target = tmp_path / "out"
        with pytest.raises(pk.PrepareError, match="would be written outside"):
            pk.safe_extract(archive, target, max_bytes=10**6)
        assert not (target / "raw" / "fine.txt").exists()
        assert not list(tmp_path.rglob("escaped.txt"))


def test_a_folder_symlinked_out_of_the_target_is_refused(tmp_path):
    outside, target = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    target.mkdir()
    (target / "raw").symlink_to(outside)
    archive = tmp_path / "a.zip"
    _zip(archive, {"raw/x.txt": b"x"})
    with pytest.raises(pk.PrepareError, match="outside"):
        pk.safe_extract(archive, target, max_bytes=10**6)
    assert not list(outside.iterdir())


def test_extraction_is_capped_by_size_and_writes_no_temporaries(tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("zeros.bin", bytes(2_000_000))  # 2 MB of zeros: a 2 KB archive
    assert archive.stat().st_size < 10_000
    with pytest.raises(pk.PrepareError, match="more than the 1.0 MB allowed.*--max-extract-gb"):
        pk.safe_extract(archive, tmp_path / "out", max_bytes=1_000_000)
    assert not (tmp_path / "out" / "zeros.bin").exists()
    pk.safe_extract(archive, tmp_path / "out", max_bytes=3_000_000)
    assert (tmp_path / "out" / "zeros.bin").stat().st_size == 2_000_000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["zeros.bin"]
