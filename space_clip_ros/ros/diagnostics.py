"""Frame statistics (rate, latency, drops, rejects) and their /diagnostics form; throttled logging.

The receipt callback, the inference worker and the diagnostics timer run on different threads,
so FrameStats guards its counters with a lock. Latency is receipt-to-publish on the node's
monotonic clock: the part of the pipeline this node is responsible for.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

RATE_WINDOW_S = 10.0
LATENCY_SAMPLES = 100
STALL_S = 5.0  # a frame waiting this long for an output makes the status WARN
ERROR_WINDOW_S = 10.0  # an inference error keeps the status WARN this long, then it recovers


@dataclass(frozen=True)
class StatsSnapshot:
    received: int
    processed: int
    dropped: int
    skipped: int  # taken while nobody subscribed to an output: not even decoded
    rejected: dict[str, int]
    errors: int
    rate_hz: float
    latency_mean_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    latency_last_ms: float  # the newest frame's receipt -> publish (0 before the first)
    seconds_unserved: float  # age of the oldest frame received since the last output; 0 when none
    seconds_since_error: float | None = None  # None: no inference error yet
    # Share of finite values in the model's raw output: the last frame's, and the last frame's
    # that was not all finite (with how long ago). NaN: no frame inferred yet.
    finite_fraction: float = float("nan")
    nonfinite_frames: int = 0
    last_nonfinite_fraction: float = float("nan")
    seconds_since_nonfinite: float | None = None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        return (
            f"{self.rate_hz:.1f} Hz, latency {self.latency_mean_ms:.0f} ms "
            f"(p95 {self.latency_p95_ms:.0f}, max {self.latency_max_ms:.0f}), "
            f"received {self.received}, processed {self.processed}, "
            f"dropped {self.dropped} stale, rejected {self.rejected_total}, errors {self.errors}"
            + (f", NON-FINITE depth in {self.nonfinite_frames}" if self.nonfinite_frames else "")
        )


@dataclass
class FrameStats:
    """Counters of what happened to each incoming frame; all methods are thread-safe."""

    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _received: int = field(default=0, init=False)
    _processed: int = field(default=0, init=False)
    _dropped: int = field(default=0, init=False)
    _skipped: int = field(default=0, init=False)
    _errors: int = field(default=0, init=False)
    _rejected: Counter = field(default_factory=Counter, init=False)
    _done_at: deque = field(default_factory=lambda: deque(maxlen=10_000), init=False)
    _unserved_since: float | None = field(default=None, init=False)
    _last_error_at: float | None = field(default=None, init=False)
    _latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES), init=False)
    _finite_fraction: float = field(default=float("nan"), init=False)
    _nonfinite_frames: int = field(default=0, init=False)
    _last_nonfinite: tuple[float, float] | None = field(default=None, init=False)  # (when, share)

    def received(self) -> None:
        now = self.clock()
        with self._lock:
            self._received += 1
            if self._unserved_since is None:
                self._unserved_since = now

    def dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def skipped(self) -> None:
        with self._lock:
            self._skipped += 1

    def rejected(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1

    def error(self) -> None:
        now = self.clock()
        with self._lock:
            self._errors += 1
            self._last_error_at = now

    def processed(self, received_at: float, finite_fraction: float = float("nan")) -> None:
        """A frame published; finite_fraction: the share of finite raw model output (NaN when
        the frame needed no inference)."""
        now = self.clock()
        with self._lock:
            self._processed += 1
            self._unserved_since = None
            self._done_at.append(now)
            self._latencies.append(now - received_at)
            if finite_fraction == finite_fraction:  # not NaN: the frame was inferred
                self._finite_fraction = finite_fraction
                if finite_fraction < 1.0:
                    self._nonfinite_frames += 1
                    self._last_nonfinite = (now, finite_fraction)

    def snapshot(self) -> StatsSnapshot:
        now = self.clock()
        with self._lock:
            recent = [t for t in self._done_at if now - t <= RATE_WINDOW_S]
            latencies = np.asarray(self._latencies, dtype=np.float64) * 1e3
            if len(recent) >= 2:
                rate = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)
            else:
                rate = 0.0
            return StatsSnapshot(
                received=self._received,
                processed=self._processed,
                dropped=self._dropped,
                skipped=self._skipped,
                rejected=dict(self._rejected),
                errors=self._errors,
                rate_hz=rate,
                latency_mean_ms=float(latencies.mean()) if latencies.size else 0.0,
                latency_p95_ms=float(np.percentile(latencies, 95)) if latencies.size else 0.0,
                latency_max_ms=float(latencies.max()) if latencies.size else 0.0,
                latency_last_ms=float(latencies[-1]) if latencies.size else 0.0,
                seconds_unserved=now - self._unserved_since
                if self._unserved_since is not None
                else 0.0,
                seconds_since_error=now - self._last_error_at
                if self._last_error_at is not None
                else None,
                finite_fraction=self._finite_fraction,
                nonfinite_frames=self._nonfinite_frames,
                last_nonfinite_fraction=self._last_nonfinite[1]
                if self._last_nonfinite is not None
                else float("nan"),
                seconds_since_nonfinite=now - self._last_nonfinite[0]
                if self._last_nonfinite is not None
                else None,
            )


def diagnostic_array(
    snapshot: StatsSnapshot,
    name: str,
    hardware_id: str,
    stamp: Time,
    extra: dict[str, str],
    waiting_for_input: bool,
) -> DiagnosticArray:
    """A DiagnosticArray holding diagnostic_status of one camera."""
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [diagnostic_status(snapshot, name, hardware_id, extra, waiting_for_input)]
    return array


def diagnostic_status(
    snapshot: StatsSnapshot,
    name: str,
    hardware_id: str,
    extra: dict[str, str],
    waiting_for_input: bool,
) -> DiagnosticStatus:
    """One DiagnosticStatus: OK while frames flow; ERROR when the model's output held NaN or inf
    within the last ERROR_WINDOW_S (published as NaN = no depth, but a model that produces it is
    broken: a checkpoint or normalisation that loads and predicts nothing must not look green);
    WARN when frames arrive but none come out or inference failed within the last
    ERROR_WINDOW_S (one bad frame must not mark the node WARN forever).

    Stalled means a frame received after the last output has waited STALL_S for one: not merely
    "no output for STALL_S", which would also blame the node for a camera that stopped publishing.
    """
    if (
        snapshot.seconds_since_nonfinite is not None
        and snapshot.seconds_since_nonfinite <= ERROR_WINDOW_S
    ):
        level, message = (
            DiagnosticStatus.ERROR,
            f"model output not finite: {100 * snapshot.last_nonfinite_fraction:.1f} % finite "
            f"depth {snapshot.seconds_since_nonfinite:.0f} s ago ({snapshot.nonfinite_frames} "
            "frames in total); check the checkpoint and its normalisation",
        )
    elif snapshot.seconds_unserved > STALL_S and not waiting_for_input:
        level, message = (
            DiagnosticStatus.WARN,
            f"frames received but no depth produced for {STALL_S:g} s",
        )
    elif (
        snapshot.seconds_since_error is not None and snapshot.seconds_since_error <= ERROR_WINDOW_S
    ):
        level, message = (
            DiagnosticStatus.WARN,
            f"inference failed {snapshot.seconds_since_error:.0f} s ago "
            f"({snapshot.errors} frames in total)",
        )
    else:
        level, message = (
            DiagnosticStatus.OK,
            "running" if snapshot.processed else "waiting for images",
        )
    values = {
        "rate_hz": f"{snapshot.rate_hz:.2f}",
        "latency_mean_ms": f"{snapshot.latency_mean_ms:.1f}",
        "latency_p95_ms": f"{snapshot.latency_p95_ms:.1f}",
        "latency_max_ms": f"{snapshot.latency_max_ms:.1f}",
        "frames_received": str(snapshot.received),
        "frames_processed": str(snapshot.processed),
        "frames_dropped_stale": str(snapshot.dropped),
        "frames_skipped_unsubscribed": str(snapshot.skipped),
        "frames_rejected": str(snapshot.rejected_total),
        "inference_errors": str(snapshot.errors),
        "finite_depth_fraction": f"{snapshot.finite_fraction:.4f}",
        "frames_nonfinite_depth": str(snapshot.nonfinite_frames),
        **{f"rejected_{reason}": str(n) for reason, n in sorted(snapshot.rejected.items())},
        **extra,
    }
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


class ThrottledLog:
    """At most one message per key per period; the next one says how many were suppressed.

    rclpy's own throttling is keyed by call site, which would let one bad-input reason hide
    every other one behind a single shared logging line.
    """

    def __init__(
        self,
        emit: Callable[[str], None],
        period_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._emit = emit
        self._period = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._period:
                self._suppressed[key] += 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        self._emit(message + (f" ({suppressed} similar suppressed)" if suppressed else ""))
        return True
