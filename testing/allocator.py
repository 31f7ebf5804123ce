"""Where glibc put a process's memory, read from /proc/<pid>/smaps: how the tests see that the
large-message tunables (space_clip_ros/ros/large_messages.py) took effect in a process.

The environment cannot tell: glibc 2.36 cuts GLIBC_TUNABLES at its first ':' in the process's
own copy of its environment (what /proc/<pid>/environ shows) while it parses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from space_clip_ros.ros.large_messages import glibc_version

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    name: str  # "[heap]", a file, or "" for anonymous memory
    flags: frozenset[str]  # VmFlags: "hg" = madvise(MADV_HUGEPAGE) applied


def mappings(pid: Union[int, str] = "self") -> list[Mapping]:
    found: list[Mapping] = []
    start = end = 0
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:
            start, end = (int(x, 16) for x in head[0].split("-"))
            name = head[5] if len(head) > 5 else ""
        elif head and head[0] == "VmFlags:":
            found.append(Mapping(start, end, name, frozenset(head[1:])))
    return found


def holding(address: int, pid: Union[int, str] = "self") -> Mapping:
    """The mapping that holds `address`."""
    (mapping,) = [m for m in mappings(pid) if m.start <= address < m.end]
    return mapping


def thresholds_unseen() -> Optional[str]:
    """Why the malloc thresholds cannot be seen here; None when they can."""
    if not Path("/proc/self/smaps").exists():
        return "needs Linux's /proc/<pid>/smaps to see where malloc put a block"
    if glibc_version() is None:
        return "GLIBC_TUNABLES is glibc's; this Python runs on another libc"
    return None


def huge_pages_unseen() -> Optional[str]:
    """Why glibc.malloc.hugetlb=1 leaves no mark here; None when it marks malloc's memory."""
    reason = thresholds_unseen()
    if reason:
        return reason
    version = glibc_version()
    if version < (2, 35):
        return f"glibc {version[0]}.{version[1]} predates glibc.malloc.hugetlb (2.35)"
    mode = THP_MODE.read_text().strip() if THP_MODE.exists() else "absent"
    if "[madvise]" not in mode:
        return (
            f"transparent huge pages here: {mode}; glibc asks for them only in madvise mode "
            "(always: the kernel gives them anyway; never: none)"
        )
    return None
