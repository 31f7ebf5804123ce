"""Run a call as a user who cannot read a mode-000 file, even when the tests run as root.

Root reads any file whatever its mode, so a test of "permission denied" would pass or fail by
who runs it. As root the call runs in a forked child that first drops to nobody (uid/gid 65534);
otherwise in-process. Either way the outcome comes back as ('ok', repr) or (type name, message).
pytest's tmp_path sits in a folder only its owner may enter, so the files go in `open_folder()`,
where nobody is refused by the file's own mode and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

NOBODY = 65534


def _outcome(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        return "ok", repr(call())
    except Exception as exc:  # noqa: BLE001 - the test inspects whatever was raised
        return type(exc).__name__, str(exc)


def outcome_without_privileges(call: Callable[[], Any]) -> tuple[str, str]:
    if os.geteuid() != 0:
        return _outcome(call)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, report, leave without running the parent's cleanup
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = _outcome(call)
        except BaseException as exc:  # noqa: BLE001
            result = ("child failed", repr(exc))
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(result, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


@contextlib.contextmanager
def open_folder() -> Iterator[Path]:
    """A temporary folder everyone may enter (0755), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="space_clip_ros_modes_"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
