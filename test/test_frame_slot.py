"""The depth node's frame slot: a queue of depth one where the newest frame wins."""

from sensor_msgs.msg import Image

from space_clip_ros.ros.frame_slot import Frame, LatestFrameSlot


def test_latest_frame_slot_keeps_only_the_newest_frame():
    slot = LatestFrameSlot()
    assert slot.put(Frame(Image(), 1.0)) is False
    assert slot.put(Frame(Image(), 2.0)) is True  # the first was never taken: a stale drop
    assert slot.take().received_at == 2.0
    slot.close()
    assert slot.take() is None
