"""A folder written under a hidden temporary name and renamed into place when complete, and the
removal of the ones a killed writer left behind.

A bag is a folder, so io/atomic.py's file rename does not fit; the same rule applies: a failed
or interrupted run leaves nothing under the final name. A staging folder is
`.<output name>.<pid>-<random>.partial` beside the output, and holds a marker file naming the
process that writes it (pid, its start time, the host). Only SIGKILL (or a power cut) can leave
one behind: the next run for the same output removes such a folder when it is provably stale,
meaning its marker is ours, for this output name, written on this host, and its process is gone
(or the pid now belongs to a process started at another time). Anything else that looks like a
staging folder (no marker, another host, a live writer) is left alone and reported.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from space_clip_ros.errors import ConfigError

MARKER = "space_clip_ros-partial.json"
SUFFIX = ".partial"

log = logging.getLogger(__name__)


def process_start_time(pid: int) -> Optional[int]:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), None where /proc
    cannot tell (not Linux, or no such process): a pid alone can be reused after a reboot or a
    wrap-around, the pair cannot."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return int(fields[19])


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _marker(output: Path) -> dict:
    pid = os.getpid()
    return {
        "output": output.name,
        "pid": pid,
        "start_time": process_start_time(pid),
        "host": socket.gethostname(),
    }


def stale_reason(folder: Path, output: Path) -> tuple[bool, str]:
    """(whether `folder` is a staging folder of `output` whose writer is provably gone, why)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        pid, host, name = int(marker["pid"]), str(marker["host"]), str(marker["output"])
        start_time = marker.get("start_time")
    except (OSError, ValueError, KeyError, TypeError):
        return False, "it has no readable marker (another tool or an older version wrote it)"
    if name != output.name:
        return False, f"its marker names another output ({name!r})"
    if host != socket.gethostname():
        return False, f"it was written on host {host!r}, whose processes this one cannot see"
    if not process_alive(pid):
        return True, f"process {pid}, which wrote it, is gone"
    if start_time is not None and process_start_time(pid) not in (None, start_time):
        return True, f"process {pid}, which wrote it, is gone (its pid was reused)"
    return False, f"process {pid} is still writing it"


def remove_stale(output: Path) -> list[Path]:
    """Remove the staging folders of `output` that killed runs left; returns them."""
    removed = []
    for folder in sorted(output.parent.glob(f".{output.name}.*{SUFFIX}")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        stale, reason = stale_reason(folder, output)
        if stale:
            shutil.rmtree(folder)
            removed.append(folder)
            log.warning("removed %s, left by an interrupted run: %s", folder, reason)
        else:
            log.warning(
                "left %s alone: %s; remove it yourself if no run is writing it", folder, reason
            )
    return removed


@contextmanager
def staged_folder(
    output: Path, exists_fix: str = "remove it or pass another --output"
) -> Iterator[Path]:
    """A path to write `output` to, inside a fresh hidden staging folder beside it; renamed to
    `output` when the block succeeds, deleted with everything in it when it raises (Ctrl-C
    included). An existing `output` is refused, with `exists_fix` as the fix."""
    if output.exists():
        raise ConfigError("already exists", source=output, fix=exists_fix)
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(output)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{output.name}.{os.getpid()}-", suffix=SUFFIX, dir=output.parent)
    )
    try:
        (staging / MARKER).write_text(json.dumps(_marker(output)) + "\n")
        yield staging / output.name
        if output.exists():
            raise ConfigError(
                "appeared while it was written", source=output, fix="write to another name"
            )
        (staging / output.name).rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
