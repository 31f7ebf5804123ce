"""Pair two message streams by header stamp (depth images with LiDAR scans).

message_filters (ApproximateTime / ExactTime synchronizers) is not available as a pip wheel, and
the pairing needed here is small: each new message takes the other stream's buffered message with
the nearest stamp if it is within `slop` (slop 0 = exact stamps). KITTI stamps each Velodyne scan
a few milliseconds away from the image taken with it, hence a non-zero default slop in the tools.
Streams are assumed to arrive roughly in stamp order; buffers are bounded so a stream that never
pairs cannot grow memory.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")


class StampPairer(Generic[A, B]):
    """Buffers of not-yet-paired items per stream, keyed by stamp in nanoseconds."""

    def __init__(self, slop_ns: int = 0, max_buffered: int = 30) -> None:
        if slop_ns < 0 or max_buffered < 1:
            raise ValueError(
                f"slop must be >= 0 and max_buffered >= 1, got {slop_ns}, {max_buffered}"
            )
        self.slop_ns = int(slop_ns)
        self.max_buffered = max_buffered
        self._first: OrderedDict[int, A] = OrderedDict()
        self._second: OrderedDict[int, B] = OrderedDict()

    def add_first(self, stamp_ns: int, item: A) -> tuple[int, A, B] | None:
        """Offer an item of the first stream; (its stamp, it, partner) when a partner waited."""
        match = self._take_nearest(self._second, stamp_ns)
        if match is None:
            self._buffer(self._first, stamp_ns, item)
            return None
        self._forget_older(stamp_ns)
        return stamp_ns, item, match

    def add_second(self, stamp_ns: int, item: B) -> tuple[int, A, B] | None:
        """Offer an item of the second stream; the returned stamp is the first stream's."""
        nearest = self._nearest(self._first, stamp_ns)
        if nearest is None:
            self._buffer(self._second, stamp_ns, item)
            return None
        first = self._first.pop(nearest)
        self._forget_older(nearest)
        return nearest, first, item

    def _nearest(self, buffer: OrderedDict, stamp_ns: int) -> int | None:
        best = min(buffer, key=lambda s: abs(s - stamp_ns), default=None)
        if best is None or abs(best - stamp_ns) > self.slop_ns:
            return None
        return best

    def _take_nearest(self, buffer: OrderedDict, stamp_ns: int):
        best = self._nearest(buffer, stamp_ns)
        return None if best is None else buffer.pop(best)

    def _buffer(self, buffer: OrderedDict, stamp_ns: int, item) -> None:
        buffer[stamp_ns] = item
        while len(buffer) > self.max_buffered:
            buffer.popitem(last=False)

    def _forget_older(self, stamp_ns: int) -> None:
        """Items older than a paired stamp by more than the slop can never pair again."""
        for buffer in (self._first, self._second):
            for stale in [s for s in buffer if s < stamp_ns - self.slop_ns]:
                del buffer[stale]
