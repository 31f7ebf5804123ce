"""Pair two message streams by header stamp (depth images with LiDAR scans).

message_filters (ApproximateTime / ExactTime synchronizers) is not available as a pip wheel, and
the pairing needed here is small: each new message takes the other stream's buffered message with
the nearest stamp if it is within `slop` (slop 0 = exact stamps). KITTI stamps each Velodyne scan
a few milliseconds away from the image taken with it, hence a non-zero default slop in the tools.
Streams are assumed to arrive roughly in stamp order; buffers are bounded so a stream that never
pairs cannot grow memory.

A stamp of the first stream pairs at most once: a second message with a stamp already paired (a
bag played again into a running accuracy node, two depth nodes on one topic) is counted in
`duplicates` and dropped, so no frame is scored twice and the mean is not weighted by replays.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")


class StampPairer(Generic[A, B]):
    """Buffers of not-yet-paired items per stream, keyed by stamp in nanoseconds."""

    def __init__(
        self, slop_ns: int = 0, max_buffered: int = 30, max_remembered: int = 100_000
    ) -> None:
        if slop_ns < 0 or max_buffered < 1 or max_remembered < 1:
            raise ValueError(
                "slop must be >= 0, max_buffered and max_remembered >= 1, got "
                f"{slop_ns}, {max_buffered}, {max_remembered}"
            )
        self.slop_ns = int(slop_ns)
        self.max_buffered = max_buffered
        self.max_remembered = max_remembered
        self.duplicates = 0
        self._first: OrderedDict[int, A] = OrderedDict()
        self._second: OrderedDict[int, B] = OrderedDict()
        self._paired: OrderedDict[int, None] = OrderedDict()  # first-stream stamps, oldest first

    def add_first(self, stamp_ns: int, item: A) -> tuple[int, A, B] | None:
        """Offer an item of the first stream; (its stamp, it, partner) when a partner waited,
        None while it waits and for a stamp that was paired before (counted in duplicates)."""
        if stamp_ns in self._paired:
            self.duplicates += 1
            return None
        match = self._take_nearest(self._second, stamp_ns)
        if match is None:
            self._buffer(self._first, stamp_ns, item)
            return None
        self._forget_older(stamp_ns)
        self._remember(stamp_ns)
        return stamp_ns, item, match

    def add_second(self, stamp_ns: int, item: B) -> tuple[int, A, B] | None:
        """Offer an item of the second stream; the returned stamp is the first stream's."""
        nearest = self._nearest(self._first, stamp_ns)
        if nearest is None:
            self._buffer(self._second, stamp_ns, item)
            return None
        first = self._first.pop(nearest)
        self._forget_older(nearest)
        self._remember(nearest)
        return nearest, first, item

    def _remember(self, stamp_ns: int) -> None:
        self._paired[stamp_ns] = None
        while len(self._paired) > self.max_remembered:
            self._paired.popitem(last=False)

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
