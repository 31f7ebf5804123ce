"""Numpy image in, metric depth out: the PyTorch estimator and the ONNX Runtime backend."""

from space_clip_ros.inference.estimator import UNTRAINED_WARNING, DepthEstimator

__all__ = ["UNTRAINED_WARNING", "DepthEstimator"]
