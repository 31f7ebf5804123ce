"""The depth node under inference faults: OOM frees the failed frame's memory, a persistent failure
ends the node (for launch's respawn), a missing cuda:N and a drifting backend fail configure.

Faults come from estimators that raise (the node's estimator_factory seam), fed real frames
through the node's image callback with a real subscriber on `depth`, so all of this runs on a
CPU; the real OOM with real CUDA allocations is in the CUDA-only test.
"""

import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import Image

from space_clip_ros.inference import TorchEstimator
from space_clip_ros.model import build_model
from testing.estimators import KnownDepth, plane
from testing.harness import Harness, make_image, wait_for
from testing.tiny import tiny_config

REPO = Path(__file__).resolve().parents[2]
OOM = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
ILLEGAL = RuntimeError("CUDA error: an illegal memory access was encountered")


class Scripted(KnownDepth):
    """Each inference takes the next step of `script`: an exception to raise, or None to
    succeed. `allocate` runs first, standing in for the frame's device tensors."""

    def __init__(self, script, allocate=None) -> None:
        super().__init__(plane(5.0))
        self.script, self.allocate = iter(script), allocate

    def infer_frames(self, frames):
        held = self.allocate() if self.allocate else None  # noqa: F841 (dies with the frame)
        step = next(self.script, None)
        if step is not None:
            raise step
        return super().infer_frames(frames)


def serve(ros: Harness, namespace: str, estimator, **params):
    """The node on `estimator`, active, with a subscriber on depth so every frame is wanted."""
    node = ros.start(namespace, estimator=estimator, **params)
    ros.subscribe(f"{namespace}/depth", Image, wait=False)
    assert wait_for(lambda: node.wanted())
    return node


def feed(node, sec: int) -> None:
    """One frame through the node's image callback; returns once its outcome is counted."""
    before = node.stats.snapshot()
    node.receive_image(make_image(sec))
    assert wait_for(
        lambda: (
            node.gave_up
            or (lambda s: s.errors + s.processed > before.errors + before.processed)(
                node.stats.snapshot()
            )
        ),
    ), "the frame's outcome was never counted"


def test_oom_frees_the_failed_frames_tensors_before_emptying_the_cache(ros, monkeypatch):
    tensors, alive_at_empty_cache = [], []

    def activations():
        tensor = torch.ones(256, 256)  # stands in for the frame's CUDA tensors
        tensors.append(weakref.ref(tensor))
        return tensor

    monkeypatch.setattr(
        torch.cuda, "empty_cache", lambda: alive_at_empty_cache.append(tensors[-1]() is not None)
    )
    node = serve(ros, "/t_oom", Scripted([OOM], allocate=activations))
    feed(node, 1)
    assert wait_for(lambda: alive_at_empty_cache)
    assert alive_at_empty_cache == [False]  # released first, then the cache emptied
    assert node.stats.snapshot().errors == 1 and not node.gave_up and ros.context.ok()


def test_consecutive_failures_end_the_node_and_a_success_resets_the_count(own_ros):
    script = [ILLEGAL, ILLEGAL, None, ILLEGAL, ILLEGAL, ILLEGAL]
    node = serve(own_ros, "/t_fail", Scripted(script), max_consecutive_failures=3)
    pipeline = node.pipeline
    for sec in range(1, 6):
        feed(node, sec)
        assert not node.gave_up
    feed(node, 6)  # the third failure in a row
    assert node.gave_up and not own_ros.context.ok()  # main() sees gave_up and exits 1
    assert pipeline.join(timeout_s=60)  # and the pipeline stopped by itself
    assert node.stats.snapshot().errors == 5


def test_zero_disables_the_exit(ros):
    node = serve(ros, "/t_zero", Scripted([ILLEGAL] * 12), max_consecutive_failures=0)
    for sec in range(1, 13):
        feed(node, sec)
    assert not node.gave_up and ros.context.ok() and node.stats.snapshot().errors == 12


def test_a_missing_cuda_device_fails_configure_before_loading(ros):
    loads = []
    node = ros.start_node("/t_cuda99", {"device": "cuda:99"}, loads.append, autostart=False)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert loads == []  # rejected before the (slow) model load


class DriftingEstimator(TorchEstimator):
    """A backend whose scale grows 5 % per frame: what verify_on_configure must catch."""

    calls = 0

    def predict(self, image, color_order="rgb"):
        self.calls += 1
        return super().predict(image, color_order) * (1.0 + 0.05 * self.calls)


@pytest.mark.parametrize("estimator_type, expected", [
    (TorchEstimator, TransitionCallbackReturn.SUCCESS),
    (DriftingEstimator, TransitionCallbackReturn.FAILURE),
])  # fmt: skip
def test_verify_on_configure_refuses_a_drifting_backend(ros, estimator_type, expected):
    def factory(cfg):
        return estimator_type(build_model(tiny_config()), device="cpu", precision="bf16")

    params = {"device": "cpu", "verify_on_configure": True, "verify_tolerance": 0.01}
    node = ros.start_node("/t_verify", params, factory, autostart=False)
    assert node.trigger_configure() == expected
    assert (node.estimator is not None) == (expected == TransitionCallbackReturn.SUCCESS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no CUDA device here)")
def test_real_cuda_oom_is_survived_with_the_memory_released(ros):
    free, _ = torch.cuda.mem_get_info()

    class AllocatesTooMuch(TorchEstimator):
        def infer_frames(self, frames):
            held = torch.empty(int(free * 0.6), dtype=torch.uint8, device="cuda")  # noqa: F841
            torch.empty(int(free * 0.6), dtype=torch.uint8, device="cuda")  # the OOM

    estimator = AllocatesTooMuch(build_model(tiny_config()), device="cuda", precision="fp16")
    node = serve(ros, "/t_real_oom", estimator, device="cuda")
    feed(node, 1)
    assert node.stats.snapshot().errors == 1 and not node.gave_up
    assert torch.cuda.memory_reserved() < free * 0.1  # the failed frame's 60 % was given back
    depth = TorchEstimator.predict(estimator, np.zeros((64, 96, 3), np.uint8))  # GPU still works
    assert depth.shape == (64, 96) and np.isfinite(depth).all()


PERSISTENT_FAILURE = """
import sys
from space_clip_ros.ros import depth_node
from testing.estimators import KnownDepth, plane

class AlwaysFails(KnownDepth):
    def infer_frames(self, frames):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

sys.exit(depth_node.main(sys.argv[1:], estimator_factory=lambda cfg: AlwaysFails(plane(1.0))))
"""


def test_main_exits_1_after_a_persistent_failure_for_respawn(ros):
    """The real main() in its own process, fed over DDS until it gives up."""
    namespace = f"/t_persist_{os.getpid()}"
    process = subprocess.Popen(
        [sys.executable, "-c", PERSISTENT_FAILURE, "--ros-args",
         "-r", f"__ns:={namespace}", "-p", "max_consecutive_failures:=3", "-p", "device:=cpu",
         "-p", "log_period:=0.0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    ros.subscribe(f"{namespace}/depth", Image, wait=False)
    camera = ros.camera(f"{namespace}/image", f"{namespace}/camera_info")
    with ros.repeating(camera, period_s=0.05):  # until the node gives up and exits
        try:
            _, stderr = process.communicate(timeout=120)
        finally:
            process.kill()
    assert process.returncode == 1, stderr
    assert "3 frames in a row failed in inference" in stderr
    assert "respawn" in stderr


def test_backend_is_logged_and_published_in_diagnostics(ros):
    def factory(cfg):
        return TorchEstimator(build_model(tiny_config()), device="cpu", precision="fp32")

    got = ros.subscribe("/diagnostics", DiagnosticArray, wait=False)
    ros.start_node("/t_backend", {"device": "cpu", "diagnostics_period": 0.2}, factory)
    assert wait_for(lambda: got), "no /diagnostics message"
    values = {kv.key: kv.value for kv in got[-1].status[0].values}
    assert values["backend"] == "pytorch" and values["precision"] == "fp32"


def test_a_model_that_outputs_nan_turns_diagnostics_to_error(ros):
    from diagnostic_msgs.msg import DiagnosticStatus

    got = ros.subscribe("/diagnostics", DiagnosticArray, wait=False)
    nan = KnownDepth(lambda h, w: np.full((h, w), np.nan, np.float32))
    node = serve(ros, "/t_nan", nan, diagnostics_period=0.2)
    feed(node, 1)
    feed(node, 2)  # logged as an error, counted, and the node goes on serving
    assert node.stats.snapshot().nonfinite_frames == 2

    def error_status():
        for array in list(got):
            for status in array.status:
                if status.name.startswith("/t_nan") and status.level == DiagnosticStatus.ERROR:
                    return status
        return None

    assert wait_for(error_status)
    status = error_status()
    values = {kv.key: kv.value for kv in status.values}
    assert "not finite" in status.message and values["finite_depth_fraction"] == "0.0000"
