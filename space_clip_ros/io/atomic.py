"""Write a file under a temporary name and rename it into place only once it is complete.

A crash, a full disk or an exception half-way through a write must never leave a truncated file
under the final name: a reader (the node loading a checkpoint, the KITTI devkit reading a depth
PNG) would take it for a good one. os.replace is atomic within one directory, so the temporary
name lives beside the target. The temporary file is created with the ordinary open() mode, so
the umask decides its permissions exactly as for a direct write; writers that create files
with a stricter mode of their own (safetensors writes 0600) get the umask's mode back through
`default_file_mode`. `atomic_paths` extends the rule to a group of files that belong together
(one frame's depth PNG, .npy and preview): all of them appear, or none.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator, Sequence, Union

PathLike = Union[str, Path]


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


def default_dir_mode() -> int:
    """The mode mkdir() gives a new folder under the current umask (0755 under 022).

    tempfile.mkdtemp makes its folders 0700 whatever the umask; a tool that renames one into
    place resets it to this, or a robot's service user could not enter it.
    """
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike, *, fix_mode: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on error delete it.

    The temporary name keeps the suffix, so writers that choose a format by suffix still work.
    fix_mode=True resets the finished file to default_file_mode() for writers that create
    their files 0600.
    """
    target = Path(path)
    tmp = _temporary_name(target)
    try:
        yield tmp
        if fix_mode:
            os.chmod(tmp, default_file_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")


@contextlib.contextmanager
def atomic_paths(paths: Sequence[PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for a group of files, renamed into place together only if all succeed.

    Every file is staged under a temporary name beside its target; when the block ends without
    an error they are renamed one after the other (renames cost no space, so a full disk fails
    while staging, before any target changes), and on any error every staged file is removed.
    Should a rename itself fail, the targets already renamed in this group are removed too, so
    a reader never finds a partial group.
    """
    targets = [Path(p) for p in paths]
    staged = [_temporary_name(t) for t in targets]
    placed: list[Path] = []
    try:
        yield staged
        for tmp, target in zip(staged, targets):
            os.replace(tmp, target)
            placed.append(target)
    except BaseException:
        for leftover in [*staged, *placed]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
