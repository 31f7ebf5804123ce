"""Run an exported SPACE-CLIP graph with ONNX Runtime behind the same call as the PyTorch model.

Why a second backend: ONNX Runtime can hand the graph to TensorRT (Jetson, desktop GPUs) or run
it with its own CPU kernels, without PyTorch's per-op eager overhead. DepthEstimator accepts an
OnnxSpaceClip wherever it accepts a SpaceClip, so the node and the CLI take a `.onnx` file as
their checkpoint unchanged. The graph is the whole model at a fixed encoder size
(space_clip_ros.model.onnx_export); resizing in and out stays in PyTorch, shared with the
PyTorch backend, so both see the same pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import numpy as np
import torch

from space_clip_ros.errors import ConfigError
from space_clip_ros.model.onnx_export import INPUT_NAME, INPUT_RESIZE_KEY, OUTPUT_NAME
from space_clip_ros.model.space_clip import resize_bilinear, resize_to_encoder

log = logging.getLogger(__name__)


class OnnxModelError(ConfigError):
    """An ONNX file cannot serve as a SPACE-CLIP model; the message names the file and the fix."""


def execution_providers(device: torch.device, available: list[str]) -> list[str]:
    """Fastest first: TensorRT, then CUDA on a CUDA device; the CPU provider always last."""
    wanted = (
        ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if device.type == "cuda" else []
    )
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


class OnnxSpaceClip:
    """Callable like SpaceClip.forward: (B, 3, H, W) RGB in [0, 1] -> (B, 1, H_out, W_out) m."""

    def __init__(self, path: Union[str, Path], device: torch.device) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise OnnxModelError(
                f"{path}: running an .onnx model needs onnxruntime. Fix: pip install onnxruntime "
                "(CPU), "
                "onnxruntime-gpu (CUDA/TensorRT), or NVIDIA's onnxruntime wheel on Jetson."
            ) from exc
        path = Path(path).expanduser()
        if not path.is_file():
            raise OnnxModelError(
                f"{path}: ONNX model not found. Fix: export one with python -m training.export "
                "--onnx."
            )
        providers = execution_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt graphs
            raise OnnxModelError(
                f"{path}: not a loadable ONNX model ({exc}). Fix: re-export it."
            ) from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [
            o.name for o in outputs
        ]:
            raise OnnxModelError(
                f"{path}: expected input '{INPUT_NAME}' and output '{OUTPUT_NAME}', found inputs "
                f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}. Fix: export "
                "with "
                "space_clip_ros.model.onnx_export (python -m training.export --onnx)."
            )
        shape = inputs[0].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]) or shape[1] != 3:
            raise OnnxModelError(
                f"{path}: input shape {shape} is not (batch, 3, H, W) with a fixed H and W."
            )
        self.input_size: tuple[int, int] = (shape[2], shape[3])
        # graphs exported before the resize was recorded were all bilinear
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.input_resize = metadata.get(INPUT_RESIZE_KEY, "bilinear_antialias")
        self.device = device
        self.providers = self.session.get_providers()
        log.info("ONNX model %s on %s", path, ", ".join(self.providers))

    def to(self, device: torch.device) -> "OnnxSpaceClip":
        return self  # the session's providers were chosen for the device at construction

    def eval(self) -> "OnnxSpaceClip":
        return self

    def __call__(
        self, images: torch.Tensor, output_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        out_size = tuple(output_size) if output_size is not None else tuple(images.shape[-2:])
        x = resize_to_encoder(images.float(), self.input_size, self.input_resize)
        (depth,) = self.session.run(
            [OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x.cpu().numpy())}
        )
        return resize_bilinear(torch.from_numpy(depth).to(images.device), out_size)
