"""The depth node's frame slot (a queue of depth one where the newest frame wins) and frame board
(the newest frame of each camera, handed over as one batch)."""

import threading

import pytest
from sensor_msgs.msg import Image

from space_clip_ros.ros.frame_slot import Frame, FrameBoard, LatestFrameSlot


def test_latest_frame_slot_keeps_only_the_newest_frame():
    slot = LatestFrameSlot()
    assert slot.put(Frame(Image(), 1.0)) is False
    assert slot.put(Frame(Image(), 2.0)) is True  # the first was never taken: a stale drop
    assert slot.take().received_at == 2.0
    slot.close()
    assert slot.take() is None


def frame(t: float) -> Frame:
    return Frame(Image(), t)


def take_in_thread(board: FrameBoard, wait_s: float) -> tuple[threading.Thread, list]:
    got: list = []
    thread = threading.Thread(target=lambda: got.append(board.take_batch(wait_s)), daemon=True)
    thread.start()
    return thread, got


def test_the_board_keeps_each_cameras_newest_frame_and_hands_all_ready_ones_over():
    board = FrameBoard(["front", "left", "rear"])
    assert board.put("front", frame(1.0)) is False
    assert board.put("front", frame(2.0)) is True  # per camera, the newest wins
    assert board.put("left", frame(3.0)) is False
    batch = board.take_batch()
    assert {c: f.received_at for c, f in batch.items()} == {"front": 2.0, "left": 3.0}
    assert board.put("front", frame(4.0)) is False  # taken: not a stale drop any more


def test_a_batch_waits_for_the_other_cameras_and_ends_as_soon_as_all_are_there():
    board = FrameBoard(["front", "left"])
    board.put("front", frame(1.0))
    thread, got = take_in_thread(board, wait_s=60.0)
    board.put("left", frame(2.0))  # the wait ends when every camera has a frame
    thread.join(timeout=30)
    assert not thread.is_alive() and set(got[0]) == {"front", "left"}


def test_a_silent_camera_holds_the_others_back_by_at_most_the_wait():
    board = FrameBoard(["front", "silent"])
    board.put("front", frame(1.0))
    thread, got = take_in_thread(board, wait_s=0.05)
    thread.join(timeout=30)
    assert not thread.is_alive() and list(got[0]) == ["front"]


def test_closing_the_board_ends_a_waiting_take():
    board = FrameBoard(["front"])
    thread, got = take_in_thread(board, wait_s=0.0)
    board.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and got == [None]
    with pytest.raises(ValueError, match="distinct"):
        FrameBoard(["a", "a"])
