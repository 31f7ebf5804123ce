"""Estimators that stand in for the model in node tests: they meet the estimator contract
(space_clip_ros.inference.DepthEstimator) and return a depth the test knows."""

from __future__ import annotations

import threading
from typing import Callable, Optional

import numpy as np
import torch

from space_clip_ros.inference import DepthEstimator


class StandIn(DepthEstimator):
    """The estimator contract's fixed facts for a stand-in whose depth is made, not inferred
    (tests, bench/bench_node.py's instant model): no training camera, so depth is not mapped."""

    @property
    def input_size(self) -> tuple[int, int]:
        return (224, 224)

    @property
    def input_resize(self) -> str:
        return "bilinear_antialias"

    @property
    def camera(self):
        return None


class KnownDepth(StandIn):
    """depth_fn(h, w) at the requested output size; records the pixels and colour order given.

    fail_with: an exception the next inference raises once. (A slow model is GatedDepth: it
    waits for the test's signal, never for a time.)
    """

    def __init__(
        self,
        depth_fn: Callable[[int, int], np.ndarray],
        fail_with: Optional[BaseException] = None,
    ) -> None:
        super().__init__(torch.device("cpu"), "fp32", "known depth")
        self.depth_fn, self.fail_with = depth_fn, fail_with
        self.calls: list[tuple[np.ndarray, str]] = []
        self.batches: list[int] = []  # frames per infer_frames call

    def _called(self, pixels: torch.Tensor, color_order: str) -> None:
        self.calls.append((pixels.cpu().numpy().copy(), color_order))
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error

    def infer(self, pixels, color_order="rgb", output_size=None) -> torch.Tensor:
        self._called(pixels[0], color_order)
        return super().infer(pixels, color_order, output_size)

    def infer_frames(self, frames) -> list[torch.Tensor]:
        """depth_fn at each frame's own output size (not resampled from the encoder's)."""
        self.batches.append(len(frames))
        for pixels, order, _, _ in frames:
            self._called(pixels, order)
        return [self._depth(size) for _, _, size, _ in frames]

    def _depth(self, size: tuple[int, int]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.depth_fn(*size), np.float32))

    def forward(self, images: torch.Tensor, output_size: tuple[int, int], view=None):
        depth = self._depth(output_size)
        return depth.expand(images.shape[0], 1, *depth.shape).clone()


def plane(z: float) -> Callable[[int, int], np.ndarray]:
    return lambda h, w: np.full((h, w), z, np.float32)


class GatedDepth(KnownDepth):
    """KnownDepth whose first inference waits until `gate` is set: frames pile up meanwhile, so a
    test decides what is waiting when inference resumes, without timing anything."""

    def __init__(self, depth_fn: Callable[[int, int], np.ndarray]) -> None:
        super().__init__(depth_fn)
        self.gate, self.waiting = threading.Event(), threading.Event()

    def infer_frames(self, frames) -> list[torch.Tensor]:
        if not self.batches:
            self.waiting.set()
            assert self.gate.wait(timeout=120), "the test never opened the gate"
        return super().infer_frames(frames)
