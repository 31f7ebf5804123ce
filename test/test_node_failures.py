"""The depth node under inference faults: OOM frees the failed frame's memory, a persistent failure
ends the node (for launch's respawn), a missing cuda:N and a drifting backend fail configure.

Faults are injected (a _process or estimator that raises), so all of this runs on a CPU; the real
OOM with real CUDA allocations is in the CUDA-only test at the end.
"""

import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from space_clip_ros.inference import DepthEstimator
from space_clip_ros.model import build_model
from space_clip_ros.model.tiny import tiny_config
from space_clip_ros.ros.depth_node import DepthNode, Frame, LatestFrameSlot


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def make_node(context, factory=None, **overrides) -> DepthNode:
    overrides.setdefault("autostart", False)
    overrides.setdefault("device", "cpu")
    kwargs = {"estimator_factory": factory} if factory else {}
    return DepthNode(
        context=context,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        **kwargs,
    )


class Worker:
    """Runs node._work on its own thread and feeds it one frame at a time, in order."""

    def __init__(self, node: DepthNode) -> None:
        # Every frame reaches _process: someone listens, a model is loaded, the image decodes.
        node._wanted, node._decode, node._estimator = (lambda: True), (lambda msg: None), object()
        self.slot, self.done = LatestFrameSlot(), 0
        self.processed = threading.Semaphore(0)
        self.thread = threading.Thread(target=node._work, args=(self.slot,), daemon=True)
        self.thread.start()

    def feed(self) -> None:
        self.slot.put(Frame(Image(), time.monotonic()))
        assert self.processed.acquire(timeout=10), "the worker did not take the frame"

    def stop(self) -> None:
        self.slot.close()
        self.thread.join(timeout=10)


def test_oom_frees_the_failed_frames_tensors_before_emptying_the_cache(context, monkeypatch):
    node = make_node(context)
    alive_at_empty_cache, tensors = [], []

    def out_of_memory(frame, color):
        activations = torch.ones(256, 256)  # stands in for the frame's CUDA tensors
        tensors.append(weakref.ref(activations))
        worker.processed.release()
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(node, "_process", out_of_memory)
    monkeypatch.setattr(
        torch.cuda, "empty_cache", lambda: alive_at_empty_cache.append(tensors[-1]() is not None)
    )
    worker = Worker(node)
    worker.feed()
    worker.stop()
    assert alive_at_empty_cache == [False]  # released first, then the cache emptied
    assert node.stats.snapshot().errors == 1 and not node.gave_up and context.ok()
    node.destroy_node()


def test_consecutive_failures_end_the_node_and_a_success_resets_the_count(context, monkeypatch):
    node = make_node(context, max_consecutive_failures=3)
    script = iter([False, False, True, False, False, False])

    def process(frame, color):
        worker.processed.release()
        if not next(script):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(node, "_process", process)
    worker = Worker(node)
    for _ in range(5):
        worker.feed()
        assert not node.gave_up
    worker.feed()  # the third failure in a row
    worker.thread.join(timeout=10)
    assert not worker.thread.is_alive()  # the worker stopped by itself
    assert node.gave_up and not context.ok()  # main() sees gave_up and exits 1
    assert node.stats.snapshot().errors == 5
    node.destroy_node()


def test_zero_disables_the_exit(context, monkeypatch):
    node = make_node(context, max_consecutive_failures=0)

    def process(frame, color):
        worker.processed.release()
        raise RuntimeError("persistent")

    monkeypatch.setattr(node, "_process", process)
    worker = Worker(node)
    for _ in range(12):
        worker.feed()
    worker.stop()
    assert not node.gave_up and context.ok() and node.stats.snapshot().errors == 12
    node.destroy_node()


def test_a_missing_cuda_device_fails_configure_before_loading(context):
    loads = []
    node = make_node(context, factory=loads.append, device="cuda:99")
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert loads == []  # rejected before the (slow) model load
    node.destroy_node()


class DriftingEstimator(DepthEstimator):
    """A backend whose scale grows 5 % per frame: what verify_on_configure must catch."""

    calls = 0

    def predict(self, image, color_order="rgb"):
        self.calls += 1
        return super().predict(image, color_order) * (1.0 + 0.05 * self.calls)


@pytest.mark.parametrize("estimator_type, expected", [
    (DepthEstimator, TransitionCallbackReturn.SUCCESS),
    (DriftingEstimator, TransitionCallbackReturn.FAILURE),
])  # fmt: skip
def test_verify_on_configure_refuses_a_drifting_backend(context, estimator_type, expected):
    def factory(cfg):
        return estimator_type(build_model(tiny_config()), device="cpu", precision="bf16")

    node = make_node(context, factory=factory, verify_on_configure=True, verify_tolerance=0.01)
    assert node.trigger_configure() == expected
    assert (node._estimator is not None) == (expected == TransitionCallbackReturn.SUCCESS)
    node.destroy_node()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no CUDA device here)")
def test_real_cuda_oom_is_survived_with_the_memory_released(context, monkeypatch):
    node = make_node(context, device="cuda")
    estimator = DepthEstimator(build_model(tiny_config()), device="cuda", precision="fp16")
    free, total = torch.cuda.mem_get_info()

    def process(frame, color):
        held = torch.empty(int(free * 0.6), dtype=torch.uint8, device="cuda")  # noqa: F841
        worker.processed.release()
        torch.empty(int(free * 0.6), dtype=torch.uint8, device="cuda")  # the OOM

    monkeypatch.setattr(node, "_process", process)
    worker = Worker(node)
    worker.feed()
    worker.stop()
    assert node.stats.snapshot().errors == 1 and not node.gave_up
    assert torch.cuda.memory_reserved() < free * 0.1  # the failed frame's 60 % was given back
    depth = estimator.predict(np.zeros((64, 96, 3), np.uint8))  # and the GPU still works
    assert depth.shape == (64, 96) and np.isfinite(depth).all()
    node.destroy_node()


MAIN_WITH_A_PERSISTENT_FAILURE = """
import sys, threading, time
import torch
from sensor_msgs.msg import Image
from space_clip_ros.ros import depth_node as dn

class Loaded:
    device, precision, trained, backend = torch.device("cpu"), "fp32", True, "fake"

def persistent_cuda_error(self, frame, color):
    raise RuntimeError("CUDA error: an illegal memory access was encountered")

activate = dn.DepthNode.on_activate

def activate_and_feed(self, state):
    result = activate(self, state)
    slot = self._slot

    def feed():
        while not self.gave_up:
            slot.put(dn.Frame(Image(), time.monotonic()))
            time.sleep(0.01)

    threading.Thread(target=feed, daemon=True).start()
    return result

dn.DepthNode.__init__.__kwdefaults__["estimator_factory"] = lambda cfg: Loaded()
dn.DepthNode._process = persistent_cuda_error
dn.DepthNode._wanted = lambda self: True
dn.DepthNode._decode = lambda self, msg: None
dn.DepthNode.on_activate = activate_and_feed
sys.exit(dn.main(sys.argv[1:]))
"""


def test_main_exits_1_after_a_persistent_failure_for_respawn():
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", MAIN_WITH_A_PERSISTENT_FAILURE, "--ros-args",
         "-p", "max_consecutive_failures:=3", "-p", "device:=cpu"],
        capture_output=True, text=True, timeout=120, cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "3 frames in a row failed in inference" in result.stderr
    assert "respawn" in result.stderr


def test_backend_is_logged_and_published_in_diagnostics(context):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    def factory(cfg):
        return DepthEstimator(build_model(tiny_config()), device="cpu", precision="fp32")

    node = make_node(context, factory=factory)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    listener = rclpy.create_node("diagnostics_listener", context=context)
    got = []
    listener.create_subscription(DiagnosticArray, "/diagnostics", got.append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        node._publish_diagnostics()
        executor.spin_once(timeout_sec=0.2)
    assert got, "no /diagnostics message"
    values = {kv.key: kv.value for kv in got[0].status[0].values}
    assert values["backend"] == "pytorch" and values["precision"] == "fp32"
    executor.shutdown()
    listener.destroy_node()
    node.destroy_node()
