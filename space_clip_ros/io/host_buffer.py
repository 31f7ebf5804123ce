"""Reusable byte buffers that become message data without a copy (no ROS, no torch)."""

from __future__ import annotations

import array
from typing import Optional

import numpy as np


class HostBuffer:
    """A reusable byte buffer with a typed numpy view over it.

    The buffer is an `array.array('B')` because that is the type rclpy stores in a message's
    uint8[] field: a message built by space_clip_ros.ros.image_codec.new_message takes `raw` as
    its data without a copy. It is reallocated only when the frame's shape changes. Contents
    are valid until the next frame is completed.
    """

    def __init__(self) -> None:
        self.raw: Optional[array.array] = None
        self.array: Optional[np.ndarray] = None

    def ensure(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        if self.array is None or self.array.shape != shape or self.array.dtype != dtype:
            self.array = None  # release the view before the old buffer goes
            self.raw = array.array("B", b"\0") * (int(np.prod(shape)) * dtype.itemsize)
            self.array = np.frombuffer(self.raw, dtype=dtype).reshape(shape)
        return self.array
