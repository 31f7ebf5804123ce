"""KITTI timestamp files ('2011-09-26 13:02:25.964389445', one per frame) to integer nanoseconds.

KITTI writes nanosecond fractions, which a float of seconds since 1970 cannot hold, so the
fraction is parsed as an integer. The clock is treated as UTC: the dataset does not state a time
zone and only differences between stamps matter for replay and pairing.
"""

from __future__ import annotations

import calendar
import re
import time
from pathlib import Path

from space_clip_ros.kitti.errors import KittiFormatError

_STAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the Unix epoch; raises ValueError that quotes the text on a bad format."""
    match = _STAMP.match(text.strip())
    if match is None:
        raise ValueError(f"expected 'YYYY-MM-DD HH:MM:SS.fffffffff', got {text.strip()!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(9, "0")
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"date or time out of range in {text.strip()!r}")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1_000_000_000 + int(fraction)


def load_timestamps(path: Path | str) -> list[int]:
    """All stamps of a timestamps.txt, in file order; blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(
            f"{path}: timestamp file not found; is this a KITTI raw '*_sync' drive folder?"
        )
    stamps = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            stamps.append(parse_timestamp(line))
        except ValueError as err:
            raise KittiFormatError(f"{path}:{number}: {err}") from None
    if not stamps:
        raise KittiFormatError(f"{path}: no timestamps in file")
    return stamps


def format_timestamp(stamp_ns: int) -> str:
    """The inverse of parse_timestamp, in KITTI's exact layout (used to write synthetic drives)."""
    seconds, nanos = divmod(int(stamp_ns), 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}"
