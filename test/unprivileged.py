"""Run a call as a user who cannot read a mode-000 file, even when the tests run as root.

Root reads any file whatever its mode, so a test of "permission denied" would pass or fail by
who runs it. As root the call runs in a forked child that first drops to nobody (uid/gid 65534);
otherwise in-process. Either way the outcome comes back as ('ok', repr) or (type name, message).
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable

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
