"""Numpy image in, metric depth out: the estimator contract and its PyTorch and ONNX Runtime
implementations."""

from space_clip_ros.inference.estimator import (
    UNTRAINED_WARNING,
    DepthEstimator,
    OnnxEstimator,
    TorchEstimator,
)

__all__ = ["UNTRAINED_WARNING", "DepthEstimator", "OnnxEstimator", "TorchEstimator"]
