"""DepthEstimator: numpy images in, metric depth out; the one inference path node and CLI share.

Uploads uint8 pixels as-is and does colour-order, scaling, resizing and normalisation on the
device (a 1242x375 uint8 frame is 1.4 MB; as float32 on the host it would be 5.6 MB to copy).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch

from space_clip_ros.errors import ConfigError
from space_clip_ros.inference.onnx_runtime import OnnxSpaceClip
from space_clip_ros.model import (
    BackboneConfig,
    BackboneWeightsError,
    SpaceClip,
    SpaceClipConfig,
    build_model,
    load_checkpoint,
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

UNTRAINED_WARNING = (
    "NO TRAINED CHECKPOINT: running SPACE-CLIP with an untrained (random) decoder. The whole "
    "pipeline runs, but the depth values are MEANINGLESS. Train one with training/ or pass a "
    "checkpoint directory."
)


def untrained_model(backbone_weights: str | None = None) -> SpaceClip:
    """The default architecture without a trained decoder, for demos and dry runs.

    Tries the real CLIP weights first; when they cannot be fetched (offline) the backbone is
    random too, and the warning says so.
    """
    log.warning(UNTRAINED_WARNING)
    try:
        return build_model(SpaceClipConfig(), backbone_weights=backbone_weights)
    except BackboneWeightsError as exc:
        log.warning("CLIP weights unavailable (%s); the backbone is random as well.", exc)
        return build_model(SpaceClipConfig(backbone=BackboneConfig(pretrained=None)))


def backbone_dtype_for(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype the frozen backbone's weights are stored in for inference at `dtype`.

    Half on CUDA: cast once at load, so its 86 M weights are not re-cast by autocast every frame
    (memory traffic that matters on Jetson's shared memory). fp32 elsewhere: CPU autocast keeps
    fp32 master weights, and the CPU's half kernels are no faster for weights cast ahead.
    """
    return dtype if device.type == "cuda" and dtype != torch.float32 else torch.float32


class DepthEstimator:
    """precision: 'auto' (fp16 on CUDA, bf16 on a CPU with native bf16, fp32 otherwise; see
    space_clip_ros.runtime), fp32, fp16 or bf16. The head's last conv and the output resize run
    in fp32 in every half path (space_clip_ros.model.decoder.DepthHead), so depth stays smooth.

    Note: on CUDA in half precision the model's backbone is cast in place (backbone_dtype_for).
    """

    def __init__(
        self,
        model: "SpaceClip | OnnxSpaceClip",
        device: str = "auto",
        precision: Precision = "fp32",
    ) -> None:
        self.device = resolve_device(device)
        if isinstance(model, torch.nn.Module):
            dtype = resolve_precision(precision, self.device)
            self.precision = precision_name(dtype)
            self._autocast_dtype: Optional[torch.dtype] = dtype
            # the tower only: the normalisation constants stay fp32
            model.backbone.visual.to(backbone_dtype_for(self.device, dtype))
            self.backend = "pytorch"
        else:  # ONNX Runtime: the session's providers fixed the precision
            self.precision = model.precision
            self._autocast_dtype = None
            self.backend = "onnxruntime (" + ", ".join(model.providers) + ")"
        self.model = model.to(self.device).eval()
        self.trained = True

    @property
    def backbone_dtype(self) -> Optional[torch.dtype]:
        """The frozen backbone's weight dtype; None for an ONNX graph."""
        if not isinstance(self.model, torch.nn.Module):
            return None
        return next(self.model.backbone.parameters()).dtype

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Union[str, Path, None],
        device: str = "auto",
        precision: Precision = "fp32",
        backbone_weights: str | None = None,
        trt_cache_dir: Union[str, Path, None] = None,
    ) -> "DepthEstimator":
        """Load a checkpoint directory or an exported .onnx graph; None (or '') runs the untrained
        default model, loudly. trt_cache_dir: TensorRT engine and timing caches (.onnx only;
        None: onnx_runtime.DEFAULT_TRT_CACHE_DIR)."""
        resolve_device(device)  # a missing cuda:N fails now, not after loading the weights
        if checkpoint and str(checkpoint).endswith(".onnx"):
            return cls.from_onnx(checkpoint, device, precision, backbone_weights, trt_cache_dir)
        if checkpoint:
            return cls(
                load_checkpoint(checkpoint, backbone_weights=backbone_weights), device, precision
            )
        estimator = cls(untrained_model(backbone_weights), device, precision)
        estimator.trained = False
        return estimator

    @classmethod
    def from_onnx(
        cls,
        path: Union[str, Path],
        device: str = "auto",
        precision: Precision = "fp32",
        backbone_weights: str | None = None,
        trt_cache_dir: Union[str, Path, None] = None,
    ) -> "DepthEstimator":
        """ONNX Runtime backend (TensorRT / CUDA / CPU providers). The graph is fp32; fp16 runs
        through TensorRT's fp16 engine ('auto' picks it where TensorRT is available)."""
        if precision not in PRECISION_CHOICES:
            resolve_precision(precision, torch.device("cpu"))  # raises the usual message
        if backbone_weights:
            raise ConfigError(
                "the backbone weights are inside the ONNX graph",
                source=path,
                field="backbone_weights",
                fix="leave backbone_weights empty",
            )
        model = OnnxSpaceClip(path, resolve_device(device), precision, trt_cache_dir)
        return cls(model, device, precision)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.model.input_size

    def _validate(self, image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise ValueError(f"expected a numpy array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 pixels, got dtype {image.dtype}. "
                "Fix: convert 8-bit images, e.g. img.astype(np.uint8)."
            )
        if image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise ValueError(
                f"expected HxWx3 or NxHxWx3, got shape {image.shape}. "
                "Fix: drop alpha / expand grey to 3 channels."
            )
        if image.size == 0:
            raise ValueError(f"empty image, shape {image.shape}")
        return image

    def predict(self, image: np.ndarray, color_order: ColorOrder = "rgb") -> np.ndarray:
        """float32 depth in metres at the input size: HxW for one image, NxHxW for a batch."""
        if color_order not in ("rgb", "bgr"):
            raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
        image = self._validate(image)
        batch = image[None] if image.ndim == 3 else image
        with warnings.catch_warnings():
            # ROS message buffers are read-only; the tensor is only read (copied by .float()).
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            pixels = torch.from_numpy(np.ascontiguousarray(batch)).to(
                self.device, non_blocking=True
            )
        with torch.inference_mode():
            x = pixels.permute(0, 3, 1, 2)
            if color_order == "bgr":
                x = x.flip(1)
            x = x.float().div_(255.0)
            with autocast(self.device, self._autocast_dtype):
                depth = self.model(x, output_size=batch.shape[1:3])
            out = depth[:, 0].float().cpu().numpy()
        return out[0] if image.ndim == 3 else out

    def warmup(self, height: int, width: int, iterations: int = 2) -> None:
        """Run a few frames so lazy CUDA/cuDNN initialisation misses the first real frame."""
        dummy = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(iterations):
            self.predict(dummy)
