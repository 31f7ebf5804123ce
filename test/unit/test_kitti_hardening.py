"""kitti2bag under bad input (issue 12, item 5; issue 17, items 8 and 14): nothing half-written is
left, every error names its file and field (and line), stream counts that disagree stop the run
unless --truncate, stamps are checked, interrupted and killed runs clean up."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from space_clip_ros.cli.kitti2bag import main as kitti2bag
from space_clip_ros.io import atomic as staging
from space_clip_ros.io import bag_messages as msgs
from space_clip_ros.io.msg_arrays import pointcloud2_to_array
from space_clip_ros.kitti.calibration import CAM_TO_CAM, VELO_TO_CAM, load_calibration
from space_clip_ros.kitti.errors import KittiFormatError
from space_clip_ros.kitti.generated_drive import write_synthetic_drive
from space_clip_ros.kitti.generated_oxts import add_straight_drive
from space_clip_ros.kitti.timestamps import (
    check_stream,
    format_timestamp,
    parse_timestamp,
    read_timestamps,
)
from space_clip_ros.kitti.to_bag import VELO_TOPIC, image_topic

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
    assert convert(drive_dir, tmp_path / "out" / "bag") == 130
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
        [sys.executable, "-m", "space_clip_ros.cli.kitti2bag", str(drive_dir), "-o", "bag"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    (error,) = result.stderr.splitlines()
    assert error.startswith("space-clip-kitti2bag: error: ")
    assert "field 'P_rect_02' has 3 values, expected 12" in error
    assert "Traceback" not in result.stderr and not (tmp_path / "bag").exists()


# --- stamps (issue 17, item 8): a wrong stamp stops the run naming the file, the line and the fix


def shift_line(path: Path, line: int, seconds: float) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = format_timestamp(parse_timestamp(lines[line - 1]) + int(seconds * 1e9))
    path.write_text("\n".join(lines) + "\n")


def set_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_an_oxts_stamp_an_hour_early_is_refused_naming_file_and_line(
    drive_dir: Path, tmp_path: Path, capsys
):
    add_straight_drive(drive_dir)
    stamps = drive_dir / "oxts" / "timestamps.txt"
    shift_line(stamps, 1, -3600.0)
    assert convert(drive_dir, tmp_path / "bag") == 2
    err = capsys.readouterr().err
    assert f"{stamps}: line 1 (2011-09-26 12:02:25" in err and "is -3600 s from frame 0" in err
    assert "Fix: correct the line" in err and "--start/--end" in err
    assert not (tmp_path / "bag").exists()
    # the fix it names works: the frames after the bad line convert
    assert convert(drive_dir, tmp_path / "bag", "--start", "1") == 0
    assert frames_in(tmp_path / "bag", "/kitti/oxts/imu") == FRAMES - 1


def test_a_lone_frame_with_a_wrong_stamp_is_refused_by_the_other_streams(
    drive_dir: Path, tmp_path: Path, capsys
):
    stamps = drive_dir / "velodyne_points" / "timestamps.txt"
    shift_line(stamps, 1, -3600.0)
    assert convert(drive_dir, tmp_path / "bag", "--end", "1") == 2  # one frame: no step to judge
    err = capsys.readouterr().err
    assert f"{stamps}: line 1 (2011-09-26 12:02:25" in err and "-3600" in err, err
    assert "image_02/timestamps.txt (line 1" in err and not (tmp_path / "bag").exists()


def test_a_step_far_longer_than_the_streams_rate_is_refused_naming_both_lines(tmp_path: Path):
    path = tmp_path / "timestamps.txt"
    start = parse_timestamp("2011-09-26 13:02:25.964389445")
    stamps = [start + i * 103_000_000 for i in range(8)]
    stamps[0] -= 3600 * 10**9
    path.write_text("".join(format_timestamp(s) + "\n" for s in stamps))
    with pytest.raises(KittiFormatError) as error:
        check_stream(read_timestamps(path), range(8))
    assert str(error.value).startswith(
        f"{path}: line 1 (2011-09-26 12:02:25.964389445) and line 2 "
        "(2011-09-26 13:02:26.067389445) are 3600.1 s apart, 34952 times the stream's median "
        "step of 103.0 ms: one of them is wrong. Fix: "
    )
    check_stream(read_timestamps(path), range(1, 8))  # the frames after it are fine


@pytest.mark.parametrize(
    "edit, expected",
    [
        ("swap", r"line 3 \(.*\) is 0\.1\d* s before line 2 \(.*\): stamps must increase"),
        ("repeat", r"line 3 \(.*\) repeats line 2 \("),
    ],
)
def test_swapped_or_repeated_stamps_are_refused(
    drive_dir: Path, tmp_path: Path, capsys, edit: str, expected: str
):
    stamps = drive_dir / "image_02" / "timestamps.txt"
    lines = stamps.read_text().splitlines()
    lines[1:3] = [lines[2], lines[1]] if edit == "swap" else [lines[1], lines[1]]
    stamps.write_text("\n".join(lines) + "\n")
    assert convert(drive_dir, tmp_path / "bag") == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(stamps))}: {expected}", err), err
    assert not (tmp_path / "bag").exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2011-09-26 23:59:60.500000000", "is a leap second, which ROS time"),
        ("1900-09-26 13:02:26.070000000", "is outside the time ROS can hold"),
        ("2011-02-31 13:02:26.070000000", "is not a calendar date and time"),
    ],
)
def test_impossible_stamps_exit_2_naming_file_and_line(
    drive_dir: Path, tmp_path: Path, text: str, expected: str
):
    stamps = drive_dir / "velodyne_points" / "timestamps.txt"
    set_line(stamps, 2, text)
    result = subprocess.run(
        [sys.executable, "-m", "space_clip_ros.cli.kitti2bag", str(drive_dir), "-o", "bag"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"space-clip-kitti2bag: error: {stamps}:2: '{text}' {expected}")
    assert "Fix: correct the line" in error
    assert "Traceback" not in result.stderr and not (tmp_path / "bag").exists()


def test_a_latitude_past_the_pole_exits_2_naming_file_and_field(
    drive_dir: Path, tmp_path: Path, capsys
):
    add_straight_drive(drive_dir)
    packet = drive_dir / "oxts" / "data" / "0000000001.txt"
    values = packet.read_text().split()
    packet.write_text(" ".join(["95.0", *values[1:]]) + "\n")
    assert convert(drive_dir, tmp_path / "bag") == 2
    err = capsys.readouterr().err
    assert f"{packet}: field 'lat' is 95, outside -90..90. Fix: " in err, err
    assert "Traceback" not in err and list(tmp_path.glob("*bag*")) == []


def test_non_finite_velodyne_points_are_left_out_and_counted(
    drive_dir: Path, tmp_path: Path, capsys, caplog
):
    path = drive_dir / "velodyne_points" / "data" / "0000000001.bin"
    scan = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    scan[[0, 5, 9], [0, 2, 3]] = [np.nan, np.inf, -np.inf]
    scan.tofile(path)
    assert convert(drive_dir, tmp_path / "bag") == 0
    assert "left out 3 non-finite Velodyne points from 1 scans" in capsys.readouterr().out
    assert f"{path}: left out 3 of {len(scan)} points holding NaN or infinity" in caplog.text
    with Reader(tmp_path / "bag") as reader:
        clouds = [
            msgs.deserialize(data, conn.msgtype)
            for conn, _, data in reader.messages()
            if conn.topic == VELO_TOPIC
        ]
    points = pointcloud2_to_array(clouds[1], ("x", "y", "z", "intensity"))
    np.testing.assert_array_equal(points, np.delete(scan, [0, 5, 9], axis=0))
    assert clouds[1].is_dense and all(np.isfinite(pointcloud2_to_array(c)).all() for c in clouds)


# --- interrupted runs (issue 17, item 14)


def blocked_conversion(drive_dir: Path, output: Path) -> subprocess.Popen:
    """kitti2bag in a process of its own that stops, bag half-written, inside its first Velodyne
    scan and says so on stdout: the test then signals it at a known point, not after a guess."""
    code = (
        "import signal, sys, time\n"
        # Ctrl-C as a terminal gives it to a foreground command. A test run started in the
        # background (`pytest &` in a script, nohup) ignores SIGINT, and children inherit that.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from space_clip_ros.io import bag_messages as msgs\n"
        "from space_clip_ros.cli import kitti2bag\n"
        "def blocked(*args, **kwargs):\n"
        "    print('WRITING', flush=True)\n"
        "    time.sleep(600)\n"
        "msgs.point_cloud = blocked\n"
        f"sys.exit(kitti2bag.main([{str(drive_dir)!r}, '-o', {str(output)!r}, '--no-progress']))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "WRITING", process.communicate(timeout=60)
    return process


def test_ctrl_c_prints_one_line_exits_130_and_leaves_nothing(drive_dir: Path, tmp_path: Path):
    out_dir = tmp_path / "bags"
    process = blocked_conversion(drive_dir, out_dir / "drive")
    assert [p.name for p in out_dir.iterdir()][0].startswith(".drive.")  # staging exists now
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "space-clip-kitti2bag: interrupted (Ctrl-C)"
    assert "Traceback" not in err and list(out_dir.iterdir()) == []


def test_a_killed_runs_partial_folder_is_removed_by_the_next_run_and_no_other(
    drive_dir: Path, tmp_path: Path, caplog
):
    out_dir = tmp_path / "bags"
    process = blocked_conversion(drive_dir, out_dir / "drive")
    process.kill()  # SIGKILL: no cleanup can run
    process.communicate(timeout=60)
    (left,) = out_dir.iterdir()
    assert left.name.startswith(f".drive.{process.pid}-") and left.name.endswith(".partial")
    marker = json.loads((left / staging.MARKER).read_text())
    assert marker["pid"] == process.pid and marker["output"] == "drive"

    # Look-alikes that are not provably stale: another tool's folder (no marker), one whose
    # writer is alive (this test process), one for another output, one from another host.
    foreign = out_dir / ".drive.1-abc.partial"
    foreign.mkdir()
    alive = out_dir / f".drive.{os.getpid()}-def.partial"
    alive.mkdir()
    (alive / staging.MARKER).write_text(
        json.dumps(
            marker | {"pid": os.getpid(), "start_time": staging.process_start_time(os.getpid())}
        )
    )
    elsewhere = out_dir / f".drive.{process.pid}-ghi.partial"
    elsewhere.mkdir()
    (elsewhere / staging.MARKER).write_text(json.dumps(marker | {"host": "another-robot"}))
    other_output = out_dir / ".drive2.1-jkl.partial"
    other_output.mkdir()

    assert convert(drive_dir, out_dir / "drive") == 0
    assert not left.exists()
    assert {p.name for p in out_dir.iterdir()} == {
        "drive",
        foreign.name,
        alive.name,
        elsewhere.name,
        other_output.name,
    }
    assert f"removed {left}, left by an interrupted run: process {process.pid}" in caplog.text
    assert f"left {alive} alone: process {os.getpid()} is still writing it" in caplog.text
    assert f"left {foreign} alone: it has no readable marker" in caplog.text
    assert f"left {elsewhere} alone: it was written on host 'another-robot'" in caplog.text


def test_a_reused_pid_does_not_keep_a_partial_folder_alive(tmp_path: Path):
    output = tmp_path / "drive"
    folder = tmp_path / f".drive.{os.getpid()}-x.partial"
    folder.mkdir()
    marker = {"output": "drive", "pid": os.getpid(), "host": socket.gethostname()}
    (folder / staging.MARKER).write_text(json.dumps(marker | {"start_time": 1}))
    if staging.process_start_time(os.getpid()) is None:
        pytest.skip("no /proc here: a pid's start time cannot be read")
    assert staging.stale_reason(folder, output) == (
        True,
        f"process {os.getpid()}, which wrote it, is gone (its pid was reused)",
    )
    assert staging.remove_stale(output) == [folder] and not folder.exists()
