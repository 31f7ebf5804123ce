"""Received frames, the slot of depth one that keeps only the newest, and the board that keeps the
newest frame of each camera and hands the ready ones over as one batch (no torch)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Generic, Optional, Sequence, TypeVar, Union

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


class FrameBoard:
    """The newest frame of each camera, one slot per camera under one lock.

    put() replaces a frame of the same camera nobody has taken (per camera, the newest wins);
    take_batch() waits for a first frame, then up to `wait_s` for the other cameras to have one
    too, and takes every frame present: a camera that is slow or silent holds the others back by
    at most wait_s, and a camera that is ready is never left out.
    """

    def __init__(self, cameras: Sequence[str]) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be distinct and at least one, got {list(cameras)}")
        self._cond = threading.Condition()
        self._frames: dict[str, Optional[Frame]] = {c: None for c in cameras}
        self._closed = False

    def put(self, camera: str, frame: Frame) -> bool:
        """Store camera's newest frame; True when it replaced one nobody had taken."""
        with self._cond:
            replaced = self._frames[camera] is not None
            self._frames[camera] = frame
            self._cond.notify_all()
            return replaced

    def take_batch(self, wait_s: float = 0.0) -> Optional[dict[str, Frame]]:
        """camera -> newest frame for every camera that has one (at least one); None once
        closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._ready())
            if wait_s > 0 and not self._closed:
                deadline = time.monotonic() + wait_s
                self._cond.wait_for(
                    lambda: self._closed or self._ready() == len(self._frames),
                    timeout=max(0.0, deadline - time.monotonic()),
                )
            if self._closed:
                return None
            batch = {c: f for c, f in self._frames.items() if f is not None}
            for camera in batch:
                self._frames[camera] = None
            return batch

    def _ready(self) -> int:
        return sum(f is not None for f in self._frames.values())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
