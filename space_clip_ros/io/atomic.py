"""Write to a temporary name beside the target, rename into place only once complete.

The one implementation of the rule, for a file (`atomic_path`), a group of files that belong
together (`atomic_paths`: one frame's depth PNG, .npy and preview, all of them or none) and a
folder (`atomic_dir`: a bag, a checkpoint, a generated dataset). A crash, a full disk or an
exception half-way through a write must never leave a truncated result under the final name: a
reader (the node loading a checkpoint, the KITTI devkit reading a depth PNG) would take it for a
good one. os.replace is atomic within one directory, so the temporary name lives beside the
target. A temporary file is created with the ordinary open() mode, so the umask decides its
permissions exactly as for a direct write; writers that create files with a stricter mode of
their own (safetensors writes 0600) get the umask's mode back through `default_file_mode`.

A folder is written inside a hidden staging folder, `.<name>.<pid>-<random>.partial`, which
holds a marker naming the process that writes it (pid, its start time, the host). Exceptions
and Ctrl-C remove it; only SIGKILL (or a power cut) can leave one behind, and the next write of
the same folder removes it when it is provably stale: its marker is ours, for this output name,
written on this host, and its process is gone (or the pid now belongs to a process started at
another time). Anything else that looks like a staging folder (no marker, another host, a live
writer) is left alone and reported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from space_clip_ros.errors import ConfigError

PathLike = Union[str, Path]
MARKER = "space_clip_ros-partial.json"  # inside a staging folder: who writes it
STAGING_SUFFIX = ".partial"

log = logging.getLogger(__name__)


def current_umask() -> int:
    """The process's umask.

    os.umask can only be read by setting it; it is restored at once (a process-wide value, so
    a thread creating a file in between could see umask 0: acceptable for our writers, which
    run in one thread).
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode open() gives a new file under the current umask (0644 under the usual 022)."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike, *, fix_mode: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on error delete it.

    The temporary name keeps the suffix, so writers that choose a format by suffix still work.
    fix_mode=True resets the finished file to default_file_mode() for writers that create
    their files 0600.
    """
    with atomic_paths([path], fix_mode=fix_mode) as (tmp,):
        yield tmp


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")


@contextlib.contextmanager
def atomic_paths(paths: Sequence[PathLike], *, fix_mode: bool = False) -> Iterator[list[Path]]:
    """Temporary paths for a group of files, renamed into place together only if all succeed.

    Every file is staged under a temporary name beside its target; when the block ends without
    an error they are renamed one after the other (renames cost no space, so a full disk fails
    while staging, before any target changes), and on any error every staged file is removed.
    Should a rename itself fail, the targets already renamed in this group are removed too, so
    a reader never finds a partial group. fix_mode: as atomic_path's, for every file.
    """
    targets = [Path(p) for p in paths]
    staged = [_temporary_name(t) for t in targets]
    placed: list[Path] = []
    try:
        yield staged
        for tmp, target in zip(staged, targets):
            if fix_mode:
                os.chmod(tmp, default_file_mode())
            os.replace(tmp, target)
            placed.append(target)
    except BaseException:
        for leftover in [*staged, *placed]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise


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
    for folder in sorted(output.parent.glob(f".{output.name}.*{STAGING_SUFFIX}")):
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


def _taken(path: Path, replace_empty: bool) -> bool:
    """Whether a folder may not be written to `path`: something is there (an empty folder is
    free with replace_empty; rename() replaces an empty folder atomically)."""
    if not (path.exists() or path.is_symlink()):
        return False
    return not (replace_empty and path.is_dir() and not any(path.iterdir()))


@contextlib.contextmanager
def atomic_dir(
    path: PathLike,
    *,
    exists_fix: str = "remove it or choose another name",
    replace_empty: bool = False,
) -> Iterator[Path]:
    """A path to write the folder `path` to (it does not exist yet: the writer creates it),
    inside a fresh staging folder beside it; renamed to `path` when the block succeeds, deleted
    with everything in it when the block raises (Ctrl-C included).

    An existing `path` is refused with `exists_fix` as the fix, before anything is written and
    again at the rename (another process may have made it meanwhile); replace_empty lets an
    empty folder be replaced. The staging folders killed runs left for `path` are removed first
    (`remove_stale`).
    """
    target = Path(path)
    problem = "already exists and is not an empty folder" if replace_empty else "already exists"
    if _taken(target, replace_empty):
        raise ConfigError(problem, source=target, fix=exists_fix)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    staging = Path(
        tempfile.mkdtemp(
            prefix=f".{target.name}.{os.getpid()}-", suffix=STAGING_SUFFIX, dir=target.parent
        )
    )
    try:
        (staging / MARKER).write_text(json.dumps(_marker(target)) + "\n")
        yield staging / target.name
        if _taken(target, replace_empty):
            raise ConfigError(
                "appeared while it was written", source=target, fix="write to another name"
            )
        os.replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
