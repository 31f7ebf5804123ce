"""glibc's allocator set up for processes that publish or receive large messages (no rclpy).

Each large message crosses fresh memory several times per frame: rclpy's C copy of it, its CDR
serialization, a subscriber's copy. glibc serves a block above its mmap threshold (which it
moves as blocks are freed, up to 32 MiB) with a fresh mapping whose 4 KiB pages are faulted in
one by one, and returns it on free: a 133 MB 4K cloud pays about 32,000 page faults per copy, per
frame. Three tunables change that:

- `glibc.malloc.hugetlb=1` (glibc 2.35 and later; earlier glibc ignores it): malloc asks for
  transparent huge pages (madvise) on the blocks it maps and on its heap, so a fresh 133 MB block
  faults in 2 MiB at a time;
- `glibc.malloc.mmap_threshold` 32 MiB and `glibc.malloc.trim_threshold` 256 MiB: fixed, so
  messages up to 32 MiB (a 1242x375 cloud is 7.5 MB; a 1080p one, 33.2 MB, just fits) come
  from the heap and stay mapped between frames, whatever the process freed before.

Measured (bench/RESULTS.md, "Large messages: the allocator"): with points at 3840x2160 the
node's time per frame halves and its time per megapixel stops growing with the frame.

GLIBC_TUNABLES is read once, when a process starts, so these go into the environment a process
is started with (depth.launch.py gives them to the depth node and rviz2), never set from inside
it. For any other process (`ros2 run`, a subscriber of your own):

    GLIBC_TUNABLES=$(python3 -m space_clip_ros.ros.large_messages) ros2 run space_clip_ros ...

A depth node started without them says so, with that command, when it activates.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

VARIABLE = "GLIBC_TUNABLES"
LARGE_MESSAGE_TUNABLES: dict[str, str] = {
    "glibc.malloc.hugetlb": "1",
    "glibc.malloc.mmap_threshold": str(32 << 20),
    "glibc.malloc.trim_threshold": str(256 << 20),
}


def parse_tunables(value: str) -> dict[str, str]:
    """GLIBC_TUNABLES' `name=value:name=value` as a dict, in order (glibc skips empty and
    malformed entries the same way)."""
    tunables: dict[str, str] = {}
    for entry in value.split(":"):
        name, sep, setting = entry.partition("=")
        if sep and name:
            tunables[name] = setting
    return tunables


def large_message_env(environ: Mapping[str, str]) -> dict[str, str]:
    """{GLIBC_TUNABLES: ...} for a process started from `environ`: its own tunables kept as they
    are (a setting the user made wins), LARGE_MESSAGE_TUNABLES added where it sets none."""
    tunables = parse_tunables(environ.get(VARIABLE, ""))
    for name, setting in LARGE_MESSAGE_TUNABLES.items():
        tunables.setdefault(name, setting)
    return {VARIABLE: ":".join(f"{name}={setting}" for name, setting in tunables.items())}


def allocator_tuned(environ: Mapping[str, str]) -> bool:
    """Whether a process started from `environ` gets every LARGE_MESSAGE_TUNABLES entry (its
    own value of one counts: the user chose it)."""
    return LARGE_MESSAGE_TUNABLES.keys() <= parse_tunables(environ.get(VARIABLE, "")).keys()


def glibc_version() -> Optional[tuple[int, int]]:
    """(major, minor) of the glibc this process runs on; None on another libc."""
    try:
        name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
    except (AttributeError, ValueError, OSError):  # not POSIX, or the name is unknown here
        return None
    if name != "glibc":
        return None
    major, _, minor = version.partition(".")
    return int(major), int(minor.split(".")[0] or 0)


def allocator_advice(environ: Mapping[str, str]) -> Optional[str]:
    """What a node started without the setting tells its user (None: started with it, or not on
    glibc)."""
    if allocator_tuned(environ) or glibc_version() is None:
        return None
    return (
        f"started without the large-message allocator setting ({VARIABLE}): large outputs "
        "publish slower (a 4K cloud took 2x the node's time per frame without it). "
        "depth.launch.py sets it; with ros2 run, start with "
        f"{VARIABLE}=$(python3 -m space_clip_ros.ros.large_messages) (README 'Large messages')"
    )


def main() -> None:
    """Print the GLIBC_TUNABLES value to start a process with (this environment's own kept)."""
    print(large_message_env(os.environ)[VARIABLE])


if __name__ == "__main__":
    main()
