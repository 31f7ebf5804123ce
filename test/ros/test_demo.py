"""space-clip-demo end to end: synthetic camera -> space_clip_depth over DDS -> depth, points,
metrics."""

import json

import numpy as np

from space_clip_ros.io.depth_files import read_png16
from space_clip_ros.ros import demo


def _run(tmp_path, checkpoint, *extra):
    out = tmp_path / "out"
    code = demo.main(
        [
            "--frames",
            "3",
            "--width",
            "160",
            "--height",
            "48",
            "--checkpoint",
            str(checkpoint),
            "--output-dir",
            str(out),
            "--timeout",
            "60",
            *extra,
        ]
    )
    return code, out, json.loads((out / "summary.json").read_text())


def test_demo_over_dds_returns_depth_points_and_metrics(tmp_path, tiny_checkpoint, capsys):
    code, out, summary = _run(tmp_path, tiny_checkpoint)
    assert code == 0
    assert summary["transport"] == "ros" and summary["trained"] and summary["frames"] == 3
    frames = summary["per_frame"]
    assert [f["index"] for f in frames] == [0, 1, 2]
    # frames after the first always have the CameraInfo: full organized cloud, matching camera_info
    assert all(f["points_valid"] == 160 * 48 and f["camera_info_matches"] for f in frames[1:])
    assert all(np.isfinite(f["abs_rel"]) for f in frames)
    depth = np.load(out / "000001_depth.npy")
    assert depth.shape == (48, 160)
    np.testing.assert_allclose(
        read_png16(out / "000001_depth.png"), np.nan_to_num(depth), atol=1 / 256
    )
    assert all(
        (out / f"000001_{kind}.png").is_file() for kind in ("rgb", "gt", "gt_preview", "preview")
    )
    assert "through the space_clip_depth node over DDS" in capsys.readouterr().out


def test_demo_without_ros_matches_transport_free_path(tmp_path, tiny_checkpoint):
    code, out, summary = _run(tmp_path, tiny_checkpoint, "--no-ros")
    assert code == 0 and summary["transport"] == "direct"
    assert summary["per_frame"][0]["points_valid"] is None


def test_demo_says_loudly_when_untrained(tmp_path, capsys):
    code = demo.main(
        [
            "--frames",
            "1",
            "--width",
            "64",
            "--height",
            "32",
            "--no-ros",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert "NO TRAINED CHECKPOINT" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text())["trained"] is False
