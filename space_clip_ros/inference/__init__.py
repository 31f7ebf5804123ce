"""Numpy image in, metric depth out: the PyTorch estimator and the ONNX Runtime backend."""
from space_clip_ros.inference.estimator import PRECISIONS, UNTRAINED_WARNING, DepthEstimator, resolve_device

__all__ = ["PRECISIONS", "UNTRAINED_WARNING", "DepthEstimator", "resolve_device"]
