"""How a node's process ends on SIGINT (space_clip_ros.ros.node_main), in processes of their own:
signal dispositions are per process."""

import signal
import subprocess
import sys
import textwrap

# A child started with SIGINT ignored, as a shell starts a background job. Its body sends itself
# SIGINT, then waits: exit 0 is run_node's answer to a Ctrl-C; exit 7 means the signal was
# swallowed and the body ran to its end.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from space_clip_ros.ros.node_main import run_node

    def body(argv):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)  # a SIGINT that stops the node ends this at once
        return 7

    sys.exit(run_node("stop_test", [], body))
    """
)


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigint_stops_a_node_started_with_sigint_ignored():
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        preexec_fn=ignore_sigint,  # as `node &` from a script starts it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
