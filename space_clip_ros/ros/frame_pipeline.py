"""The depth node's frame pipeline: receipt, inference and publishing of successive frames overlap.

Three threads, one batch each at a time:

  executor thread   stores each incoming frame on a board that keeps the newest frame of each
                    camera (`FrameBoard`): receipt never waits, and a frame nobody has taken yet
                    is replaced by a newer one of its camera (counted as dropped);
  inference worker  takes the ready cameras' frames as one batch (waiting at most `batch_wait`
                    for the others), has the node decode and plan each, and starts the frame
                    path for all of them with one forward pass
                    (space_clip_ros.depth_frame.FrameRenderer.begin_many);
  publisher         completes each started frame (waits for the device, fills the message
                    buffers) and has the node publish all of its outputs together.

A hand-off of depth one between worker and publisher keeps at most one finished-but-unpublished
batch: on a GPU, batch n+1's decode and inference run while batch n is copied and published, so
the rate is set by the slowest stage, not their sum; on a CPU the publisher's work overlaps the
next inference. Each camera's frames are published in the order they were taken, so stamps stay
in order.

Nothing raised while handling a frame escapes a thread: every frame ends in one `FrameOutcome`,
reported to the node (which counts, logs, and ends the process after too many failures in a
row). A frame's outcome is reported without its traceback kept alive, so a CUDA out-of-memory
frame's tensors are gone before the cache is emptied.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Optional, Protocol, Sequence

import torch
from sensor_msgs.msg import CameraInfo

from space_clip_ros.depth_frame import FrameProducts, FrameRenderer, PendingFrame
from space_clip_ros.frame_plan import FramePlan
from space_clip_ros.io.image_decoding import ColorImage, ImageDecodeError
from space_clip_ros.ros.frame_slot import Frame, FrameBoard, LatestFrameSlot

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 5.0  # a stop waits this long for a busy thread (a decode or a forward pass)


class FrameOutcome(Enum):
    """How one received frame ended."""

    PUBLISHED = "published"  # every planned output went out
    SKIPPED = "skipped"  # nobody listens (or only to outputs this frame cannot give)
    REJECTED = "rejected"  # bad input: an ImageDecodeError with its reason
    OUT_OF_MEMORY = "out_of_memory"  # CUDA OOM: the frame is dropped, the cache freed
    FAILED = "failed"  # inference or publishing raised
    SHUTDOWN = "shutdown"  # ROS shut down under the frame: not a failure


@dataclass(frozen=True)
class PlannedFrame:
    """A decoded frame and what to make of it."""

    image: ColorImage
    plan: FramePlan
    camera_info: Optional[CameraInfo]  # the input camera's, when depth/camera_info is planned


class FrameHandler(Protocol):
    """What the pipeline needs from the node around each frame (camera: the camera's name)."""

    def plan_frame(self, camera: str, frame: Frame) -> Optional[PlannedFrame]:
        """Decode and plan (raising ImageDecodeError for bad input); None: nothing to do."""

    def publish_frame(
        self,
        camera: str,
        frame: Frame,
        products: FrameProducts,
        camera_info: Optional[CameraInfo],
    ) -> None:
        """Publish every output of a completed frame."""

    def frame_done(
        self,
        camera: str,
        frame: Frame,
        outcome: FrameOutcome,
        error: Optional[BaseException],
        products: Optional[FrameProducts],
    ) -> None:
        """Called once per frame taken, from the worker or the publisher thread."""


@dataclass
class _Started:
    camera: str
    frame: Frame
    pending: PendingFrame
    camera_info: Optional[CameraInfo]


class FramePipeline:
    """The worker and publisher threads of one active node, around one FrameRenderer."""

    def __init__(
        self,
        renderer: FrameRenderer,
        handler: FrameHandler,
        context_ok: Callable[[], bool],
        cameras: Sequence[str] = ("",),
        batch_wait: Callable[[], float] = lambda: 0.0,
        name: str = "space_clip",
    ) -> None:
        """batch_wait: read once per batch (a runtime parameter)."""
        self.frames = FrameBoard(cameras)
        self._started: LatestFrameSlot[list[_Started]] = LatestFrameSlot()
        self._renderer = renderer
        self._handler = handler
        self._context_ok = context_ok
        self._batch_wait = batch_wait
        # Daemon threads: a stop must not wait forever on a frame stuck in a decoder or a driver.
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_inference", daemon=True),
            threading.Thread(target=self._publish, name=f"{name}_publish", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def join(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for both threads to end (on stop, or when ROS shut down under a
        frame); True when they have."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def close(self) -> None:
        """Take no more frames; both threads end after the batch they hold (callable from them)."""
        self.frames.close()
        self._started.close()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """Close and wait for both threads; the names of threads still busy after `timeout_s`
        (left to finish on their own: they are daemons and publish nothing more)."""
        self.close()
        self.join(timeout_s)
        return [t.name for t in self._threads if t.is_alive()]

    # ------------------------------------------------------------------ threads

    def _work(self) -> None:
        while (batch := self.frames.take_batch(self._batch_wait())) is not None:
            planned: list[tuple[str, Frame, PlannedFrame]] = []
            for camera, frame in batch.items():
                try:
                    plan = self._handler.plan_frame(camera, frame)
                except Exception as exc:  # classified; nothing escapes the thread
                    if self._finish(camera, frame, self._classify(exc), exc, None):
                        return
                    continue
                if plan is None:
                    self._finish(camera, frame, FrameOutcome.SKIPPED, None, None)
                else:
                    planned.append((camera, frame, plan))
            if not planned:
                continue
            try:
                pending = self._renderer.begin_many(
                    [(p.image, p.plan) for _, _, p in planned], [c for c, _, _ in planned]
                )
            except Exception as exc:
                outcome = self._classify(exc)
                ended = [self._finish(c, f, outcome, exc, None) for c, f, _ in planned]
                if any(ended):
                    return
                continue
            started = [
                _Started(c, f, p, plan.camera_info) for (c, f, plan), p in zip(planned, pending)
            ]
            if not self._started.put(started, replace=False):
                return  # stopped while waiting for the publisher

    def _publish(self) -> None:
        while (batch := self._started.take()) is not None:
            for started in batch:
                products, outcome, error = None, FrameOutcome.PUBLISHED, None
                try:
                    products = self._renderer.complete(started.pending)
                    self._handler.publish_frame(
                        started.camera, started.frame, products, started.camera_info
                    )
                except Exception as exc:
                    outcome, error = self._classify(exc), exc
                started.pending = None  # the frame's device tensors, before a cache is emptied
                if self._finish(started.camera, started.frame, outcome, error, products):
                    return

    # ------------------------------------------------------------------ outcomes

    def _classify(self, exc: BaseException) -> FrameOutcome:
        if isinstance(exc, ImageDecodeError):
            return FrameOutcome.REJECTED
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return FrameOutcome.OUT_OF_MEMORY
        if not self._context_ok():  # Ctrl-C shut ROS down under this frame
            return FrameOutcome.SHUTDOWN
        return FrameOutcome.FAILED

    def _finish(
        self,
        camera: str,
        frame: Frame,
        outcome: FrameOutcome,
        error: Optional[BaseException],
        products: Optional[FrameProducts],
    ) -> bool:
        """Report one frame's outcome; True when the thread must end (ROS shut down)."""
        # Only the exception object travels on (its message, its type), not its traceback: the
        # traceback's frames would keep the failed frame's tensors alive.
        if error is not None:
            error = error.with_traceback(None)
        try:
            self._handler.frame_done(camera, frame, outcome, error, products)
        except Exception:  # the handler's own bug must not end the thread: said, not hidden
            log.exception("reporting a frame's outcome (%s) failed", outcome.value)
        if outcome is FrameOutcome.OUT_OF_MEMORY:
            torch.cuda.empty_cache()
        elif outcome is FrameOutcome.SHUTDOWN:  # ROS is gone: both threads end
            self.close()
            return True
        return False
