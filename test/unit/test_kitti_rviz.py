"""config/kitti_replay.rviz: the view of a moving drive rviz2 users want from a kitti2bag bag."""

from pathlib import Path

import yaml

from space_clip_ros.kitti.to_bag import BASE_FRAME, VELO_TOPIC, WORLD_FRAME

RVIZ = Path(__file__).resolve().parents[2] / "config" / "kitti_replay.rviz"
DEPTH_POINTS = "/kitti/camera_color_left/points"  # the depth node's `points` in the launch's ns


def test_fixed_frame_is_world_with_depth_clouds_accumulating_beside_the_velodyne():
    manager = yaml.safe_load(RVIZ.read_text())["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == WORLD_FRAME
    assert manager["Views"]["Current"]["Target Frame"] == BASE_FRAME
    clouds = {
        d["Topic"]["Value"]: d
        for d in manager["Displays"]
        if d["Class"] == "rviz_default_plugins/PointCloud2"
    }
    assert set(clouds) == {DEPTH_POINTS, VELO_TOPIC}
    assert clouds[DEPTH_POINTS]["Decay Time"] >= 5  # seconds of clouds kept: a trail of the drive
    assert clouds[VELO_TOPIC]["Decay Time"] == 0  # the live scan only
    assert all(d["Use Fixed Frame"] for d in clouds.values())
    assert all(d["Topic"]["Reliability Policy"] == "Reliable" for d in clouds.values())
