"""The in-process loopback the demo, bench and node tests share: discovery waits that say what
never came, and a close() that leaves nothing running."""

import pytest

from space_clip_ros.errors import RuntimeFailure
from space_clip_ros.ros.loopback import CameraClient, Loopback


def test_discovery_timeouts_name_the_topic_and_close_shuts_everything_down():
    with Loopback() as loopback:
        node = loopback.start_node("/t_loop", {"device": "cpu"}, autostart=False)
        assert loopback.nodes == [node]
        with pytest.raises(TimeoutError, match="nobody subscribed to /t_loop/image"):
            CameraClient(loopback, "/t_loop", timeout_s=0.3)  # inactive: nothing subscribes
        with pytest.raises(TimeoutError, match="nobody published /t_loop/depth"):
            loopback.wait_for_publishers("/t_loop/depth", 0.3)  # unconfigured: no outputs
    assert loopback.nodes == [] and not loopback.context.ok()


def test_a_node_that_cannot_start_is_a_runtime_failure_naming_it(tmp_path):
    with Loopback() as loopback:
        missing = {"checkpoint": str(tmp_path / "missing"), "device": "cpu"}
        with pytest.raises(RuntimeFailure, match="/t_fail/space_clip_depth: the depth node"):
            loopback.start_node("/t_fail", missing)
        assert len(loopback.nodes) == 1  # still released and destroyed by close()
    assert loopback.nodes == []
