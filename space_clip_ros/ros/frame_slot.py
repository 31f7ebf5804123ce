"""Received frames and the slot of depth one that keeps only the newest (no torch)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar, Union

from sensor_msgs.msg import CompressedImage, Image


@dataclass(frozen=True)
class Frame:
    msg: Union[Image, CompressedImage]
    received_at: float  # time.monotonic() at receipt


T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    """A queue of depth one: put() replaces an item nobody has taken, take() blocks for the next.

    Used for incoming frames (the newest wins) and for the worker -> publisher hand-off, where
    `put(..., replace=False)` waits for room instead (a started frame is never thrown away).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._closed = False

    def put(self, item: T, replace: bool = True) -> bool:
        """Store `item`. replace=True: True when it replaced an item nobody had taken (a stale
        drop). replace=False: wait until the slot is empty; False when closed meanwhile."""
        with self._cond:
            if replace:
                replaced = self._item is not None
                self._item = item
                self._cond.notify_all()
                return replaced
            while self._item is not None and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._item = item
            self._cond.notify_all()
            return True

    def take(self) -> Optional[T]:
        """The newest item, or None once closed."""
        with self._cond:
            while self._item is None and not self._closed:
                self._cond.wait()
            item, self._item = self._item, None
            self._cond.notify_all()
            return None if self._closed else item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
