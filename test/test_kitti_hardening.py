"""kitti2bag under bad input (issue 12, item 5): nothing half-written is left, every error names
its file and field, stream counts that disagree stop the run unless --truncate."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from space_clip_ros.io import bag_messages as msgs
from space_clip_ros.kitti.calibration import CAM_TO_CAM, VELO_TO_CAM, load_calibration
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.generated_drive import write_synthetic_drive
from space_clip_ros.kitti.to_bag import VELO_TOPIC, image_topic
from space_clip_ros.kitti.to_bag import main as kitti2bag

FRAMES = 3


@pytest.fixture
def drive_dir(tmp_path: Path) -> Path:
    return write_synthetic_drive(tmp_path / "kitti", frames=FRAMES)


def convert(drive_dir: Path, out: Path, *extra: str) -> int:
    return kitti2bag([str(drive_dir), "-o", str(out), "--no-progress", *extra])


def frames_in(bag: Path, topic: str) -> int:
    with Reader(bag) as reader:
        return sum(1 for c, _, _ in reader.messages() if c.topic == topic)


def edit_field(path: Path, key: str, values: str) -> None:
    lines = [
        f"{key}: {values}" if line.startswith(f"{key}:") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


def test_failure_mid_bag_leaves_nothing_and_the_retry_succeeds(drive_dir: Path, tmp_path: Path):
    out_dir = tmp_path / "bags"
    out_dir.mkdir()
    scan = drive_dir / "velodyne_points" / "data" / "0000000002.bin"
    good = scan.read_bytes()
    scan.write_bytes(good[:-3])  # the third scan is truncated: found while the writer is open
    assert convert(drive_dir, out_dir / "drive") == 2
    assert list(out_dir.iterdir()) == []  # no partial bag, no staging folder
    scan.write_bytes(good)
    assert convert(drive_dir, out_dir / "drive") == 0
    assert frames_in(out_dir / "drive", VELO_TOPIC) == FRAMES
    assert [p.name for p in out_dir.iterdir()] == ["drive"]


def test_unexpected_exception_and_interrupt_also_clean_up(
    drive_dir: Path, tmp_path: Path, monkeypatch
):
    calls = []

    def failing_cloud(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_cloud(*args, **kwargs)

    real_cloud = msgs.point_cloud
    monkeypatch.setattr(msgs, "point_cloud", failing_cloud)
    with pytest.raises(KeyboardInterrupt):
        convert(drive_dir, tmp_path / "out" / "bag")
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_output_is_refused_before_writing(drive_dir: Path, tmp_path: Path, capsys):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "keep.txt").write_text("mine")
    assert convert(drive_dir, tmp_path / "bag") == 2
    assert "bag: already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "bag").iterdir()] == ["keep.txt"]


def test_calibration_without_p_rect_02_names_file_and_key(drive_dir: Path, tmp_path, capsys):
    path = drive_dir.parent / CAM_TO_CAM
    path.write_text(
        "".join(
            line
            for line in path.read_text().splitlines(keepends=True)
            if not line.startswith(("P_rect_02", "S_rect_02"))
        )
    )
    assert convert(drive_dir, tmp_path / "bag") == 2
    err = capsys.readouterr().err
    assert f"{CAM_TO_CAM}: field 'P_rect_02' is missing" in err
    assert "Traceback" not in err and not (tmp_path / "bag").exists()


@pytest.mark.parametrize(
    "file, key, values, message",
    [
        (CAM_TO_CAM, "R_rect_00", "1 0 0 0 nan 0 0 0 1", r"field 'R_rect_00' holds NaN"),
        (CAM_TO_CAM, "P_rect_02", "72 0 60 0 0 72 17 0 0 0 0 0", r"field 'P_rect_02' is singular"),
        (VELO_TO_CAM, "R", "1 0 0 0 1 0 0 0 0", r"field 'R' is not a rotation matrix"),
        (VELO_TO_CAM, "R", "1 0 0 0 1 0 0 0 -1", r"field 'R' is not a rotation matrix"),
        (VELO_TO_CAM, "T", "0 0 inf", r"field 'T' holds NaN or infinity"),
    ],
)
def test_bad_calibration_values_name_file_and_field(
    drive_dir: Path, tmp_path: Path, capsys, file: str, key: str, values: str, message: str
):
    edit_field(drive_dir.parent / file, key, values)
    with pytest.raises(KittiFormatError, match=rf"{file}:\d+: {message}|{file}: {message}"):
        load_calibration(drive_dir.parent)
    assert convert(drive_dir, tmp_path / "bag") == 2
    assert file in capsys.readouterr().err


def test_undecodable_calibration_names_the_file(drive_dir: Path, tmp_path: Path, capsys):
    path = drive_dir.parent / VELO_TO_CAM
    path.write_bytes(b"R: \xff\xfe\x00 1 0 0\n")
    with pytest.raises(KittiFormatError, match=rf"{VELO_TO_CAM}: not a text file"):
        load_calibration(drive_dir.parent)
    assert convert(drive_dir, tmp_path / "bag") == 2
    assert VELO_TO_CAM in capsys.readouterr().err


def test_fewer_timestamps_than_frames_is_an_error_naming_counts_and_files(
    drive_dir: Path, tmp_path: Path, capsys
):
    stamps = drive_dir / "velodyne_points" / "timestamps.txt"
    stamps.write_text("".join(stamps.read_text().splitlines(keepends=True)[:2]))
    assert convert(drive_dir, tmp_path / "bag") == 2
    err = capsys.readouterr().err
    assert "velodyne_points/timestamps.txt: 2" in err
    assert "image_02/timestamps.txt: 3" in err and "velodyne_points/data: 3" in err
    assert "--truncate" in err and not (tmp_path / "bag").exists()

    assert convert(drive_dir, tmp_path / "bag", "--truncate") == 0
    assert frames_in(tmp_path / "bag", VELO_TOPIC) == 2
    assert frames_in(tmp_path / "bag", image_topic(2)) == 2


def test_more_timestamps_than_image_files_is_an_error(drive_dir: Path, tmp_path: Path, capsys):
    (drive_dir / "image_02" / "data" / "0000000002.png").unlink()
    assert convert(drive_dir, tmp_path / "bag") == 2
    err = capsys.readouterr().err
    assert "image_02/data: 2" in err and "image_02/timestamps.txt: 3" in err
    assert convert(drive_dir, tmp_path / "bag", "--truncate") == 0
    np.testing.assert_equal(frames_in(tmp_path / "bag", image_topic(2)), 2)


def test_frame_range_outside_the_drive_names_the_options(drive_dir: Path, tmp_path, capsys):
    assert convert(drive_dir, tmp_path / "bag", "--end", "9") == 2
    assert "--start/--end: frame range [0, 9) is outside the drive's 3 frames" in (
        capsys.readouterr().err
    )


def test_command_line_reports_a_bad_calibration_without_a_traceback(drive_dir: Path, tmp_path):
    edit_field(drive_dir.parent / CAM_TO_CAM, "P_rect_02", "1 2 3")
    result = subprocess.run(
        [sys.executable, "-m", "space_clip_ros.kitti.to_bag", str(drive_dir), "-o", "bag"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    *warnings, error = result.stderr.splitlines()
    assert warnings == [
        f"space-clip-kitti2bag: WARNING: {drive_dir}: no oxts/ folder; no IMU, GPS or /tf written"
    ]
    assert error.startswith("space-clip-kitti2bag: error: ")
    assert "field 'P_rect_02' has 3 values, expected 12" in error
    assert "Traceback" not in result.stderr and not (tmp_path / "bag").exists()
