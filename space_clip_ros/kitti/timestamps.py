"""KITTI timestamp files ('2011-09-26 13:02:25.964389445', one per frame) to integer nanoseconds,
and the checks that keep a wrong stamp out of a bag.

KITTI writes nanosecond fractions, which a float of seconds since 1970 cannot hold, so the
fraction is parsed as an integer. The clock is treated as UTC: the dataset does not state a time
zone and only differences between stamps matter for replay and pairing.

What a stamp may be: a real calendar date between 1970-01-01 and 2038-01-19 03:14:07 (ROS time
counts seconds since the Unix epoch in an int32, and a bag's receive times cannot precede it).
A leap second (23:59:60.x) is refused: ROS time and rosbag2 count POSIX seconds, which have no
61st second, so it could only be stored by repeating or shifting a second of the drive; no KITTI
recording day had one, so such a line is a corrupted file, not a measurement.

What a stream must be (checked by `check_stream` on the frames being converted): stamps that
strictly increase, with no step longer than `MAX_STEP_RATIO` times the stream's median step (a
10 Hz KITTI stream: about 1 s). A stamp an hour off, two swapped lines or a repeated line would
otherwise pass into the bag and stretch a 4 s drive to an hour, or make a player go backwards.
"""

from __future__ import annotations

import calendar
import re
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from space_clip_ros.kitti.errors import KittiFormatError

_STAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")
NS_PER_S = 1_000_000_000
# builtin_interfaces/Time.sec is an int32: the last second ROS time can hold.
LAST_ROS_SECOND = 2**31 - 1
MAX_STEP_RATIO = 10.0
FIX_LINE = "correct the line (re-extract the drive if it came from KITTI), or convert frames "
FIX_RANGE = "that avoid it with --start/--end"


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the Unix epoch; raises ValueError that quotes the text on a bad format,
    an impossible date, a leap second or a moment ROS time cannot hold (module docstring)."""
    stripped = text.strip()
    match = _STAMP.match(stripped)
    if match is None:
        raise ValueError(f"expected 'YYYY-MM-DD HH:MM:SS.fffffffff', got {stripped!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if second == 60:
        raise ValueError(
            f"{stripped!r} is a leap second, which ROS time (POSIX seconds) cannot represent"
        )
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"{stripped!r} is not a calendar date and time") from None
    seconds = calendar.timegm(moment.timetuple())
    if not 0 <= seconds <= LAST_ROS_SECOND:
        raise ValueError(
            f"{stripped!r} is outside the time ROS can hold (1970-01-01 to 2038-01-19 03:14:07)"
        )
    return seconds * NS_PER_S + int((match.group(7) or "").ljust(9, "0"))


@dataclass(frozen=True)
class StampFile:
    """A timestamps.txt read: the stamps in file order and the line each came from."""

    path: Path
    stamps: list[int]
    lines: list[int]


def read_timestamps(path: Path | str) -> StampFile:
    """All stamps of a timestamps.txt with their line numbers; blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(
            f"{path}: timestamp file not found; is this a KITTI raw '*_sync' drive folder?"
        )
    stamps, lines = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            stamps.append(parse_timestamp(line))
        except ValueError as err:
            raise KittiFormatError(
                f"{path}:{number}: {err}", fix="correct the line or re-extract the drive"
            ) from None
        lines.append(number)
    if not stamps:
        raise KittiFormatError(f"{path}: no timestamps in file")
    return StampFile(path, stamps, lines)


def load_timestamps(path: Path | str) -> list[int]:
    """All stamps of a timestamps.txt, in file order; blank lines are ignored."""
    return read_timestamps(path).stamps


def check_stream(stamps: StampFile, frames: range) -> None:
    """Refuse, naming the file and lines, stamps of `frames` that repeat, go backwards or jump
    further than MAX_STEP_RATIO times the stream's median step."""
    values = [stamps.stamps[i] for i in frames]
    steps = [b - a for a, b in zip(values, values[1:])]
    median = statistics.median(steps) if steps else 0

    def where(offset: int) -> str:
        index = frames[offset]
        return f"line {stamps.lines[index]} ({format_timestamp(stamps.stamps[index])})"

    for offset, step in enumerate(steps):
        earlier, later = where(offset), where(offset + 1)
        if step == 0:
            problem = f"{later} repeats {earlier}"
        elif step < 0:
            problem = f"{later} is {-step / NS_PER_S:.6g} s before {earlier}: stamps must increase"
        elif median > 0 and step > MAX_STEP_RATIO * median:
            problem = (
                f"{earlier} and {later} are {step / NS_PER_S:.6g} s apart, "
                f"{step / median:.0f} times the stream's median step of {median / 1e6:.1f} ms: "
                "one of them is wrong"
            )
        else:
            continue
        raise KittiFormatError(problem, source=stamps.path, fix=FIX_LINE + FIX_RANGE)


def check_streams_agree(reference: StampFile, other: StampFile, frames: range) -> None:
    """Refuse a frame whose stamp in `other` is further from `reference`'s (the left camera) than
    twice the reference's median step: in a synced drive each frame's streams were captured
    within one period, so this is a wrong stamp the per-stream checks cannot see (a lone frame,
    or the first frame of a range)."""
    values = [reference.stamps[i] for i in frames]
    steps = [b - a for a, b in zip(values, values[1:])]
    tolerance = 2 * statistics.median(steps) if steps else NS_PER_S // 5
    for index in frames:
        offset = other.stamps[index] - reference.stamps[index]
        if abs(offset) > tolerance:
            raise KittiFormatError(
                f"line {other.lines[index]} ({format_timestamp(other.stamps[index])}) is "
                f"{offset / NS_PER_S:+.6g} s from frame {index} of {reference.path} "
                f"(line {reference.lines[index]}, {format_timestamp(reference.stamps[index])}); "
                f"a synced drive's streams agree within {tolerance / 1e6:.0f} ms",
                source=other.path,
                fix=FIX_LINE + FIX_RANGE,
            )


def format_timestamp(stamp_ns: int) -> str:
    """The inverse of parse_timestamp, in KITTI's exact layout (used to write synthetic drives)."""
    seconds, nanos = divmod(int(stamp_ns), NS_PER_S)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}"
