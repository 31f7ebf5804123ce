"""The estimator contract: uint8 camera pixels in, metric depth out; the one inference path.

`DepthEstimator` is what the node, the CLI, the demo, verify and the benchmarks call. It is an
abstract class with two implementations, `TorchEstimator` (SpaceClip in PyTorch) and
`OnnxEstimator` (an exported graph on ONNX Runtime), so callers never probe attributes or branch
on the model's type: everything they may read (device, precision, backend, trained, input_size)
is set by the constructor.

Two levels of call:
- `infer(pixels)` takes uint8 (B, H, W, 3) pixels already on the device and returns (B, h, w)
  float32 metres on the device. The node's frame path (space_clip_ros.depth_frame) uses it so
  post-processing runs where the depth already is, with one copy to the host per output.
- `predict(image)` is numpy in, numpy out, for the CLI, tools and the public Python API.

Pixels are uploaded as uint8 and the colour order, scaling, resizing and normalisation happen on
the device (a 1242x375 frame is 1.4 MB as uint8; as float32 it would be 5.6 MB to copy).
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
import torch

from space_clip_ros.errors import ConfigError, message
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.inference.onnx_runtime import OnnxSpaceClip
from space_clip_ros.model import (
    BackboneConfig,
    BackboneWeightsError,
    SpaceClip,
    SpaceClipConfig,
    build_model,
    load_checkpoint,
)
from space_clip_ros.model.backbone import resolve_backbone_weights
from space_clip_ros.model.canonical_camera import CameraView, ViewPlan, plan_view
from space_clip_ros.model.config import CameraConfig
from space_clip_ros.model.space_clip import (
    resize_bilinear,
    resize_to_encoder,
    view_to_encoder,
    view_to_image,
)
from space_clip_ros.runtime import (
    PRECISION_CHOICES,
    autocast,
    precision_name,
    resolve_device,
    resolve_precision,
)

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "fp16", "bf16"]

ColorOrder = Literal["rgb", "bgr"]

# What the tools' users do about an assumed camera (each tool names its own flag or parameter).
ASSUMED_CAMERA_FIX = "pass the camera's intrinsics (camera=Intrinsics(...))"

UNTRAINED_WARNING = (
    "NO TRAINED CHECKPOINT: running SPACE-CLIP with an untrained (random) decoder. The whole "
    "pipeline runs, but the depth values are MEANINGLESS. Train one with training/ or pass a "
    "checkpoint directory."
)


def untrained_model(backbone_weights: str | None = None) -> SpaceClip:
    """The default architecture without a trained decoder, for demos and dry runs.

    Uses the real CLIP weights when they can be had (a cache, a download, a local file); when
    they cannot (offline), the backbone is random too, and the warning says so. Built once.
    """
    log.warning(UNTRAINED_WARNING)
    config = SpaceClipConfig()
    try:
        resolve_backbone_weights(config.backbone, backbone_weights)
    except BackboneWeightsError as exc:
        log.warning("CLIP weights unavailable (%s); the backbone is random as well.", exc)
        config = SpaceClipConfig(backbone=BackboneConfig(pretrained=None))
        backbone_weights = None
    return build_model(config, backbone_weights=backbone_weights)


def backbone_dtype_for(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype the frozen backbone's weights are stored in for inference at `dtype`.

    Half on CUDA: cast once at load, so its 86 M weights are not re-cast by autocast every frame
    (memory traffic that matters on Jetson's shared memory). fp32 elsewhere: CPU autocast keeps
    fp32 master weights, and the CPU's half kernels are no faster for weights cast ahead.
    """
    return dtype if device.type == "cuda" and dtype != torch.float32 else torch.float32


def _rgb_floats(pixels: torch.Tensor, color_order: ColorOrder) -> torch.Tensor:
    """(B, H, W, 3) uint8 in `color_order` -> (B, 3, H, W) RGB floats in [0, 1]."""
    if color_order not in ("rgb", "bgr"):
        raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    x = pixels.permute(0, 3, 1, 2)
    if color_order == "bgr":
        x = x.flip(1)
    return x.float().div_(255.0)


def check_pixels(image: np.ndarray) -> np.ndarray:
    """`image` if it is uint8 HxWx3 or NxHxWx3 with pixels; a ValueError with the fix if not."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            message(
                f"expected uint8 pixels, got dtype {image.dtype}",
                fix="convert 8-bit images, e.g. img.astype(np.uint8)",
            )  # fmt: skip
        )
    if image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(
            message(
                f"expected HxWx3 or NxHxWx3, got shape {image.shape}",
                fix="drop alpha / expand grey to 3 channels",
            )  # fmt: skip
        )
    if image.size == 0:
        raise ValueError(f"empty image, shape {image.shape}")
    return image


class DepthEstimator(ABC):
    """The contract: `forward` is the one method a backend implements.

    device, precision ('fp32', 'fp16', 'bf16'), backend (a name for logs and /diagnostics),
    trained (False: an untrained decoder, whose depth is meaningless) and input_size (the
    encoder's (H, W)) are fixed at construction.
    """

    def __init__(
        self,
        device: torch.device,
        precision: str,
        backend: str,
        trained: bool = True,
        source: object = "the model",
    ) -> None:
        self.device = device
        self.precision = precision
        self.backend = backend
        self.trained = trained
        self.source = source  # the checkpoint, for messages
        self._warned: set[str] = set()

    @property
    @abstractmethod
    def input_size(self) -> tuple[int, int]:
        """The encoder's input (H, W)."""

    @property
    @abstractmethod
    def input_resize(self) -> str:
        """How frames are resized to the encoder input (model.config.INPUT_RESIZE_METHODS)."""

    @property
    @abstractmethod
    def camera(self) -> Optional[CameraConfig]:
        """The camera the decoder was trained under (the checkpoint's record; None: a checkpoint
        made before the record, whose depth is not mapped to the input camera)."""

    @abstractmethod
    def forward(
        self,
        images: torch.Tensor,
        output_size: tuple[int, int],
        view: Optional[CameraView] = None,
    ) -> torch.Tensor:
        """(B, 3, H, W) RGB floats in [0, 1] on the device -> (B, 1, h, w) float32 metres.

        view: how the images reach the encoder (model.canonical_camera), None: resized whole.
        """

    def view_plan(
        self,
        width: int,
        height: int,
        camera: Optional[Intrinsics],
        fix: str = ASSUMED_CAMERA_FIX,
    ) -> ViewPlan:
        """The one mapping decision for width x height images of a camera with these intrinsics
        (None: the training camera's focal length is assumed, and the plan's warning says so)."""
        return plan_view(
            self.camera, camera, width, height, self.input_size, source=self.source, fix=fix
        )

    # ------------------------------------------------------------------ the shared call path

    def upload(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) on the device, from an HxWx3 or NxHxWx3 uint8 array."""
        image = check_pixels(image)
        batch = image[None] if image.ndim == 3 else image
        with warnings.catch_warnings():
            # ROS message buffers are read-only; the tensor is only read.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            pixels = torch.from_numpy(np.ascontiguousarray(batch))
        return pixels.to(self.device, non_blocking=True)

    def infer(
        self,
        pixels: torch.Tensor,
        color_order: ColorOrder = "rgb",
        output_size: Optional[tuple[int, int]] = None,
        camera: Optional[Intrinsics] = None,
        camera_fix: str = ASSUMED_CAMERA_FIX,
    ) -> torch.Tensor:
        """(B, h, w) float32 metres on the device for uint8 (B, H, W, 3) pixels on the device.

        output_size (h, w) defaults to the input's (H, W). camera: the intrinsics of the images
        (at their size): depth is mapped to that camera (view_plan); None assumes the training
        camera's focal length and logs a warning once per image size, naming camera_fix (what
        the caller's user does about it: a tool's flags).
        """
        size = tuple(output_size) if output_size is not None else tuple(pixels.shape[1:3])
        plan = self.view_plan(pixels.shape[2], pixels.shape[1], camera, camera_fix)
        self._warn_once(plan.warning)
        with torch.inference_mode():
            x = _rgb_floats(pixels, color_order)
            return self.forward(x, size, view=plan.view)[:, 0].float()

    def infer_frames(
        self,
        frames: Sequence[tuple[torch.Tensor, ColorOrder, tuple[int, int], Optional[CameraView]]],
    ) -> list[torch.Tensor]:
        """One forward pass for frames of any sizes: (pixels (H, W, 3) uint8 on the device,
        colour order, output (h, w), view from view_plan or None) each -> (h, w) float32 metres
        each, on the device.

        Each frame reaches the encoder input on its own (its view), the batch runs once at the
        encoder's size, and each depth goes back to its own output size: the same numbers as
        `infer` per frame (the same functions in the same order), one forward for all of them.
        """
        if not frames:
            return []
        encoder = self.input_size
        with torch.inference_mode():
            inputs = []
            for pixels, order, _, view in frames:
                x = _rgb_floats(pixels[None], order)
                inputs.append(
                    resize_to_encoder(x, encoder, self.input_resize)
                    if view is None
                    else view_to_encoder(x, view, encoder, self.input_resize)
                )
            depth = self.forward(torch.cat(inputs), encoder).float()
            return [
                (
                    resize_bilinear(depth[i : i + 1], size)
                    if view is None
                    else view_to_image(depth[i : i + 1], view, size)
                )[0, 0]
                for i, (_, _, size, view) in enumerate(frames)
            ]

    def predict(
        self,
        image: np.ndarray,
        color_order: ColorOrder = "rgb",
        camera: Optional[Intrinsics] = None,
        camera_fix: str = ASSUMED_CAMERA_FIX,
    ) -> np.ndarray:
        """float32 depth in metres at the input size: HxW for one image, NxHxW for a batch.

        camera, camera_fix: the images' intrinsics (see infer)."""
        pixels = self.upload(image)
        depth = self.infer(pixels, color_order, camera=camera, camera_fix=camera_fix)
        depth = depth.cpu().numpy()
        return depth[0] if image.ndim == 3 else depth

    def _warn_once(self, warning: Optional[str]) -> None:
        """Log a view plan's warning the first time it is given (per image size and camera)."""
        if warning and warning not in self._warned:
            self._warned.add(warning)
            log.warning(warning)

    def warmup(self, height: int, width: int, iterations: int = 2) -> None:
        """Run a few frames so lazy CUDA/cuDNN initialisation misses the first real frame."""
        dummy = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(iterations):
            self.predict(dummy)

    # ------------------------------------------------------------------ construction

    @staticmethod
    def from_checkpoint(
        checkpoint: Union[str, Path, None],
        device: str = "auto",
        precision: Precision = "fp32",
        backbone_weights: str | None = None,
        trt_cache_dir: Union[str, Path, None] = None,
    ) -> "DepthEstimator":
        """The estimator for a checkpoint directory or an exported .onnx graph; None (or '')
        runs the untrained default model, loudly. trt_cache_dir: TensorRT engine and timing
        caches (.onnx only; None: onnx_runtime.DEFAULT_TRT_CACHE_DIR)."""
        resolve_device(device)  # a missing cuda:N fails now, not after loading the weights
        if checkpoint and str(checkpoint).endswith(".onnx"):
            return OnnxEstimator(checkpoint, device, precision, backbone_weights, trt_cache_dir)
        if checkpoint:
            model = load_checkpoint(checkpoint, backbone_weights=backbone_weights)
            return TorchEstimator(model, device, precision, source=checkpoint)
        return TorchEstimator(untrained_model(backbone_weights), device, precision, trained=False)


class TorchEstimator(DepthEstimator):
    """SpaceClip in PyTorch. precision: 'auto' (fp16 on CUDA, bf16 on a CPU with native bf16,
    fp32 otherwise; see space_clip_ros.runtime), fp32, fp16 or bf16. The head's last conv and
    the output resize run in fp32 in every half path (model.decoder.DepthHead), so depth stays
    smooth.

    Note: on CUDA in half precision the model's backbone is cast in place (backbone_dtype_for).
    """

    def __init__(
        self,
        model: SpaceClip,
        device: str = "auto",
        precision: Precision = "fp32",
        trained: bool = True,
        source: object = "the model",
    ) -> None:
        resolved = resolve_device(device)
        dtype = resolve_precision(precision, resolved)
        super().__init__(resolved, precision_name(dtype), "pytorch", trained, source)
        self._autocast_dtype = dtype
        # the tower only: the normalisation constants stay fp32
        model.backbone.visual.to(backbone_dtype_for(resolved, dtype))
        self.model = model.to(resolved).eval()

    @property
    def input_size(self) -> tuple[int, int]:
        return self.model.input_size

    @property
    def input_resize(self) -> str:
        return self.model.config.backbone.input_resize

    @property
    def camera(self) -> Optional[CameraConfig]:
        return self.model.config.camera

    @property
    def backbone_dtype(self) -> torch.dtype:
        """The frozen backbone's weight dtype."""
        return next(self.model.backbone.parameters()).dtype

    def forward(
        self,
        images: torch.Tensor,
        output_size: tuple[int, int],
        view: Optional[CameraView] = None,
    ) -> torch.Tensor:
        with autocast(self.device, self._autocast_dtype):
            return self.model(images, output_size=output_size, view=view)


class OnnxEstimator(DepthEstimator):
    """An exported graph on ONNX Runtime (TensorRT / CUDA / CPU providers). The graph is fp32;
    fp16 runs through TensorRT's fp16 engine ('auto' picks it where TensorRT is available)."""

    def __init__(
        self,
        path: Union[str, Path],
        device: str = "auto",
        precision: Precision = "fp32",
        backbone_weights: str | None = None,
        trt_cache_dir: Union[str, Path, None] = None,
    ) -> None:
        if precision not in PRECISION_CHOICES:
            resolve_precision(precision, torch.device("cpu"))  # raises the usual message
        if backbone_weights:
            raise ConfigError(
                "the backbone weights are inside the ONNX graph",
                source=path,
                field="backbone_weights",
                fix="leave backbone_weights empty",
            )
        resolved = resolve_device(device)
        self.model = OnnxSpaceClip(path, resolved, precision, trt_cache_dir)
        backend = "onnxruntime (" + ", ".join(self.model.providers) + ")"
        super().__init__(resolved, self.model.precision, backend, source=path)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.model.input_size

    @property
    def input_resize(self) -> str:
        return self.model.input_resize

    @property
    def camera(self) -> Optional[CameraConfig]:
        return self.model.camera

    @property
    def path(self) -> Path:
        return self.model.path

    def forward(
        self,
        images: torch.Tensor,
        output_size: tuple[int, int],
        view: Optional[CameraView] = None,
    ) -> torch.Tensor:
        return self.model(images, output_size=output_size, view=view)
