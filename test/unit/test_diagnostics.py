"""Frame statistics, the diagnostics they publish, and the per-key throttled log (no DDS)."""

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from space_clip_ros.ros.diagnostics import (
    ERROR_WINDOW_S,
    STALL_S,
    FrameStats,
    ThrottledLog,
    diagnostic_array,
)

STAMP = Time(sec=7, nanosec=123)


def test_frame_stats_rate_latency_and_diagnostics():
    now = [100.0]
    stats = FrameStats(clock=lambda: now[0])
    for i in range(5):
        stats.received()
        now[0] = 100.0 + 0.5 * (i + 1)
        stats.processed(received_at=now[0] - 0.2)
    stats.dropped()
    stats.rejected("encoding")
    snap = stats.snapshot()
    assert snap.rate_hz == pytest.approx(2.0) and snap.latency_mean_ms == pytest.approx(200.0)
    assert (snap.received, snap.processed, snap.dropped, snap.rejected_total) == (5, 5, 1, 1)
    array = diagnostic_array(snap, "/ns/node: depth", "cpu", STAMP, {"device": "cpu"}, False)
    status = array.status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert (
        status.level == DiagnosticStatus.OK
        and values["frames_dropped_stale"] == "1"
        and values["rejected_encoding"] == "1"
    )
    assert values["rate_hz"] == "2.00" and values["device"] == "cpu"


def test_diagnostics_warn_only_when_a_received_frame_waits_too_long_for_output():
    now = [0.0]
    stats = FrameStats(clock=lambda: now[0])

    def level(waiting_for_input: bool = False) -> int:
        return (
            diagnostic_array(stats.snapshot(), "n", "cpu", STAMP, {}, waiting_for_input)
            .status[0]
            .level
        )

    stats.received()
    now[0] = 0.5
    assert level() == DiagnosticStatus.OK  # the first frame is still in inference: not a stall
    stats.processed(received_at=0.0)
    now[0] = 60.0
    assert (
        level() == DiagnosticStatus.OK
    )  # the camera stopped: no frame is waiting, the node is fine
    stats.received()
    assert level() == DiagnosticStatus.OK  # it resumed: a frame that just arrived has not waited
    stats.received()  # newer frames do not restart the clock of the oldest waiting one
    now[0] = 60.0 + STALL_S + 0.1
    assert level() == DiagnosticStatus.WARN
    assert (
        level(waiting_for_input=True) == DiagnosticStatus.OK
    )  # nobody subscribes: nothing to produce
    stats.processed(received_at=now[0] - 0.2)
    assert level() == DiagnosticStatus.OK


def test_diagnostics_warn_after_an_inference_error_then_recover():
    now = [0.0]
    stats = FrameStats(clock=lambda: now[0])

    def status():
        return diagnostic_array(stats.snapshot(), "n", "cpu", STAMP, {}, False).status[0]

    stats.received()
    stats.error()
    now[0] = 1.0
    assert status().level == DiagnosticStatus.WARN and "1 frames in total" in status().message
    stats.received()
    stats.processed(received_at=now[0])
    now[0] = 1.0 + ERROR_WINDOW_S + 0.1
    assert (
        status().level == DiagnosticStatus.OK
    )  # frames flow again: the old error no longer counts
    assert {kv.key: kv.value for kv in status().values}[
        "inference_errors"
    ] == "1"  # but it stays counted


def test_throttled_log_is_per_key_and_counts_suppressed_messages():
    now, lines = [0.0], []
    log = ThrottledLog(lines.append, period_s=5.0, clock=lambda: now[0])
    assert log("a", "first a") and log("b", "first b") and not log("a", "again a")
    now[0] = 6.0
    log("a", "later a")
    assert lines == ["first a", "first b", "later a (1 similar suppressed)"]
