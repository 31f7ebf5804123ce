"""QoS profiles built from the node's reliability and depth parameters."""

import pytest
from rclpy.qos import ReliabilityPolicy

from space_clip_ros.ros import qos


def test_qos_profiles_follow_the_parameters():
    assert qos.make_qos("reliable", 3).reliability == ReliabilityPolicy.RELIABLE
    assert qos.make_qos("reliable", 3).depth == 3
    assert qos.make_qos("best_effort", 1).reliability == ReliabilityPolicy.BEST_EFFORT
    expected = qos.BEST_AVAILABLE if qos.BEST_AVAILABLE is not None else ReliabilityPolicy.RELIABLE
    assert qos.make_qos("best_available", 1).reliability == expected
    with pytest.raises(ValueError, match="unknown reliability"):
        qos.reliability_policy("sometimes")
