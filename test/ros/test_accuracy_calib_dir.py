"""space_clip_accuracy's calib_dir parameter as a launch passes it: unexpanded `~`, and errors that
name the parameter (not the --calib-dir flag of the offline tools)."""

import numpy as np
import pytest
from rclpy.parameter import Parameter

from space_clip_ros.errors import ConfigError
from space_clip_ros.kitti.calibration import load_calibration
from space_clip_ros.kitti.generated_drive import write_synthetic_drive
from space_clip_ros.ros.accuracy_node import AccuracyNode, camera_from_lidar


def test_a_home_relative_calib_dir_is_expanded(ros, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    drive = write_synthetic_drive(tmp_path / "kitti", frames=1)
    relative = "~/" + str(drive.parent.relative_to(tmp_path))  # ~/kitti/2011_09_26
    expected = load_calibration(drive.parent).camera_from_velodyne(2)
    assert np.array_equal(camera_from_lidar(relative, 2), expected)
    node = ros.adopt(
        AccuracyNode(
            context=ros.context, parameter_overrides=[Parameter("calib_dir", value=relative)]
        )
    )
    assert np.array_equal(node.camera_from_lidar, expected)


def test_a_calib_dir_without_calibration_names_the_parameter(tmp_path):
    with pytest.raises(ConfigError) as caught:
        camera_from_lidar(str(tmp_path), 2)
    text = str(caught.value)
    assert "calib_dir" in text and "--calib-dir" not in text
    assert "calib_velo_to_cam.txt" in text and str(tmp_path) in text
