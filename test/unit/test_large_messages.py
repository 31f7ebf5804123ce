"""space_clip_ros.ros.large_messages: the GLIBC_TUNABLES a large-message process is started with
are merged with the user's own, and glibc really applies them to a process started with them
(read back from the child's /proc/<pid>/smaps)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from space_clip_ros.ros.large_messages import (
    LARGE_MESSAGE_TUNABLES,
    VARIABLE,
    allocator_advice,
    allocator_tuned,
    large_message_env,
    parse_tunables,
)
from testing.allocator import Mapping, holding, huge_pages_unseen, thresholds_unseen

OURS = ":".join(f"{k}={v}" for k, v in LARGE_MESSAGE_TUNABLES.items())


def test_tunables_are_added_to_the_users_own_which_win():
    assert large_message_env({}) == {VARIABLE: OURS}
    assert large_message_env({VARIABLE: ""}) == {VARIABLE: OURS}
    mine = "glibc.malloc.mmap_threshold=1048576:glibc.cpu.hwcaps=-AVX2"
    merged = parse_tunables(large_message_env({VARIABLE: mine})[VARIABLE])
    assert merged == {
        "glibc.malloc.mmap_threshold": "1048576",  # the user's value, not 32 MiB
        "glibc.cpu.hwcaps": "-AVX2",
        "glibc.malloc.hugetlb": "1",
        "glibc.malloc.trim_threshold": str(256 << 20),
    }
    # glibc skips empty and malformed entries; so does the merge, keeping the rest
    assert parse_tunables("::glibc.malloc.hugetlb=0:junk:=3:") == {"glibc.malloc.hugetlb": "0"}


def test_tuned_means_every_tunable_is_set_by_someone():
    assert not allocator_tuned({})
    assert not allocator_tuned({VARIABLE: "glibc.malloc.hugetlb=1"})
    assert allocator_tuned(large_message_env({}))
    assert allocator_tuned(large_message_env({VARIABLE: "glibc.malloc.hugetlb=0"}))


def test_advice_is_for_processes_on_glibc_started_without_the_setting(monkeypatch):
    assert allocator_advice(large_message_env({})) is None
    monkeypatch.setattr(os, "confstr", lambda name: "glibc 2.36")
    assert "GLIBC_TUNABLES=$(python3 -m space_clip_ros.ros.large_messages)" in allocator_advice(
        {VARIABLE: "glibc.malloc.hugetlb=1"}
    )
    monkeypatch.setattr(os, "confstr", lambda name: "musl")  # another libc: nothing to set
    assert allocator_advice({}) is None


def test_the_module_prints_the_value_to_start_a_process_with():
    env = {**os.environ, VARIABLE: "glibc.malloc.arena_max=2"}
    printed = subprocess.run(
        [sys.executable, "-m", "space_clip_ros.ros.large_messages"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert printed == f"glibc.malloc.arena_max=2:{OURS}"


# A child allocates with malloc, prints where, and waits while the parent reads its mappings.
CHILD = r"""
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
print(libc.malloc(64 << 20), libc.malloc(20 << 20), flush=True)
sys.stdin.read()
"""


def allocations(env: dict[str, str]) -> tuple[Mapping, Mapping]:
    """The mappings holding a 64 MiB and a 20 MiB malloc block of a process started with env."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        big, mid = (int(x) for x in child.stdout.readline().split())
        return holding(big + (32 << 20), child.pid), holding(mid, child.pid)
    finally:
        child.communicate("", timeout=60)


def test_a_process_started_with_the_tunables_gets_them_from_glibc():
    reason = thresholds_unseen()
    if reason:
        pytest.skip(reason)
    # glibc's defaults: none of its allocator settings from this environment
    plain = {k: v for k, v in os.environ.items() if k != VARIABLE and not k.startswith("MALLOC_")}
    big_before, mid_before = allocations(plain)
    big, mid = allocations({**plain, **large_message_env({})})
    # glibc's default mmap threshold (128 KiB until it moves) maps 20 MiB on its own; fixed at
    # 32 MiB it comes from the heap, which stays mapped between frames
    assert mid_before.name != "[heap]"
    assert mid.name == "[heap]"
    assert "hg" not in big_before.flags
    reason = huge_pages_unseen()
    if reason:
        pytest.skip(f"{reason}: the thresholds are checked, huge pages are not")
    assert "hg" in big.flags  # the 64 MiB block: huge pages asked for
    assert "hg" in mid.flags  # and the heap
