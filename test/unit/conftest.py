"""test/unit holds the tests that need no DDS: starting rclpy here fails the test, naming where
it belongs (test/ros/), so the ROS-free selection stays what it says."""

import pytest


@pytest.fixture(autouse=True)
def _no_dds(monkeypatch):
    try:
        from rclpy.context import Context
    except ImportError:  # no rclpy: nothing here can start DDS
        return

    def refuse(self, *args, **kwargs):
        raise AssertionError(
            "this test starts rclpy (a DDS participant): test/unit is for tests without DDS; "
            "move it to test/ros/"
        )

    monkeypatch.setattr(Context, "init", refuse)
