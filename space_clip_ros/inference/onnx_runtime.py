"""Run an exported SPACE-CLIP graph with ONNX Runtime behind the same call as the PyTorch model.

Why a second backend: ONNX Runtime can hand the graph to TensorRT (Jetson, desktop GPUs) or run
it with its own CPU kernels, without PyTorch's per-op eager overhead. DepthEstimator accepts an
OnnxSpaceClip wherever it accepts a SpaceClip, so the node and the CLI take a `.onnx` file as
their checkpoint unchanged. The graph is the whole model at a fixed encoder size
(space_clip_ros.model.onnx_export); resizing in and out stays in PyTorch, shared with the
PyTorch backend, so both see the same pixels.

Why the provider options matter (space_clip_ros.inference.onnx_runtime.provider_config): without
them TensorRT builds an fp32 engine, rebuilds it at every start (minutes on a Jetson), always on
GPU 0, and rebuilds again for every new batch size. And a request for the GPU must never fall
back to the CPU silently: ONNX Runtime does exactly that when only the CPU wheel is importable
or when the CUDA libraries are missing, so both cases are errors here, with the fix.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from space_clip_ros.errors import ConfigError
from space_clip_ros.model.canonical_camera import CameraView
from space_clip_ros.model.config import camera_from_json
from space_clip_ros.model.onnx_export import CAMERA_KEY, INPUT_NAME, INPUT_RESIZE_KEY, OUTPUT_NAME
from space_clip_ros.model.space_clip import (
    resize_bilinear,
    resize_to_encoder,
    view_to_encoder,
    view_to_image,
)

log = logging.getLogger(__name__)

TENSORRT, CUDA, CPU = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
GPU_PROVIDERS = (TENSORRT, CUDA)
DEFAULT_TRT_CACHE_DIR = "~/.cache/space_clip_ros/trt"  # where an empty trt_cache_dir points
# Largest batch the TensorRT optimisation profile covers (the CLI's batches; the node sends 1).
DEFAULT_MAX_BATCH = 8
GPU_WHEEL_FIX = (
    "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu "
    "(on Jetson: NVIDIA's onnxruntime-gpu wheel for your JetPack, see README 'GPU and Jetson'), "
    "or set device to cpu"
)

ProviderList = list[tuple[str, dict[str, object]]]


class OnnxModelError(ConfigError):
    """An ONNX file cannot serve as a SPACE-CLIP model; the message names the file and the fix."""


def onnxruntime_distributions() -> list[str]:
    """Installed onnxruntime wheels by name. More than one shadow each other's files in the same
    `onnxruntime` package, and the CPU one usually wins: the GPU providers vanish."""
    names = {
        (dist.metadata["Name"] or "").lower()
        for dist in importlib.metadata.distributions()
        if (dist.metadata["Name"] or "").lower().startswith("onnxruntime")
    }
    return sorted(n for n in names if n and not n.startswith("onnxruntime-extensions"))


def resolve_onnx_precision(
    name: str, device: torch.device, available: list[str], source: object = None
) -> str:
    """The precision an ONNX graph runs in. The exported graph is fp32; only TensorRT can run it
    in fp16 (trt_fp16_enable). 'auto' takes fp16 where TensorRT is there, fp32 otherwise."""
    trt = device.type == "cuda" and TENSORRT in available
    if name == "auto":
        return "fp16" if trt else "fp32"
    if name == "fp32":
        return "fp32"
    if name == "fp16" and trt:
        return "fp16"
    where = "TensorRT" if device.type == "cuda" else "the CPU provider (device cpu)"
    raise ConfigError(
        f"an ONNX graph cannot run in {name} with {where}: the graph is fp32 and only ONNX "
        "Runtime's TensorRT provider builds an fp16 engine from it",
        source=source,
        field="precision",
        fix="use precision fp32 or auto, or install onnxruntime-gpu with TensorRT for fp16",
    )


def provider_config(
    device: torch.device,
    precision: str,
    available: list[str],
    cache_dir: Union[str, Path, None] = None,
    input_size: Optional[tuple[int, int]] = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    installed: Optional[list[str]] = None,
) -> ProviderList:
    """(provider, options) pairs for InferenceSession, fastest first, the CPU provider last.

    device cuda with neither GPU provider available is an error (never a silent CPU run).
    precision is what resolve_onnx_precision returned. input_size (H, W) enables the TensorRT
    optimisation profile for batches 1..max_batch, built once instead of per batch size.
    """
    if device.type != "cuda":
        return [(CPU, {})]
    if not any(p in available for p in GPU_PROVIDERS):
        installed = onnxruntime_distributions() if installed is None else installed
        clash = (
            f"; {' and '.join(installed)} are installed together and shadow each other"
            if len(installed) > 1
            else ""
        )
        raise ConfigError(
            f"device '{device}' asks for a GPU but onnxruntime offers only "
            f"{', '.join(available) or 'no provider'}{clash}",
            field="device",
            fix=GPU_WHEEL_FIX,
        )
    device_id = device.index if device.index is not None else 0
    providers: ProviderList = []
    if TENSORRT in available:
        cache = str(trt_cache_path(cache_dir))
        trt: dict[str, object] = {
            "device_id": device_id,
            "trt_fp16_enable": precision == "fp16",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": cache,
        }
        if input_size is not None:
            h, w = input_size
            trt.update(
                trt_profile_min_shapes=f"{INPUT_NAME}:1x3x{h}x{w}",
                trt_profile_opt_shapes=f"{INPUT_NAME}:1x3x{h}x{w}",
                trt_profile_max_shapes=f"{INPUT_NAME}:{max_batch}x3x{h}x{w}",
            )
        providers.append((TENSORRT, trt))
    if CUDA in available:
        providers.append((CUDA, {"device_id": device_id}))
    providers.append((CPU, {}))
    return providers


def session_options(ort, spin: bool = False, threads: Optional[int] = None):
    """ONNX Runtime session options for a node that shares its cores.

    ONNX Runtime's thread pools spin-wait between parallel regions by default: a session that
    owns the machine gains a little latency, but a node shares the cores with DDS, decoding and
    publishing, and a spinning pool takes their time (measured on a busy 2-core machine: the
    same graph took 0.38-0.91x the time with spinning off; bench/RESULTS.md). threads: intra-op
    threads (None: ONNX Runtime's default, one per physical core); inter-op stays sequential.
    """
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for pool in ("intra_op", "inter_op"):
        options.add_session_config_entry(f"session.{pool}.allow_spinning", "1" if spin else "0")
    return options


def trt_cache_path(cache_dir: Union[str, Path, None]) -> Path:
    """The TensorRT cache directory; None or '' is DEFAULT_TRT_CACHE_DIR."""
    return Path(cache_dir or DEFAULT_TRT_CACHE_DIR).expanduser()


def graph_input_size(path: Path) -> Optional[tuple[int, int]]:
    """(H, W) of the graph's image input read from the file without its weights; None when the
    `onnx` package is absent (TensorRT then profiles the first batch size it sees)."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
        dims = graph.input[0].type.tensor_type.shape.dim
        return (dims[2].dim_value, dims[3].dim_value) if len(dims) == 4 else None
    except Exception:  # unreadable here: InferenceSession reports it properly just after
        return None


class OnnxSpaceClip:
    """Called like SpaceClip.forward: (B, 3, H, W) RGB in [0, 1] -> (B, 1, H_out, W_out) metres."""

    def __init__(
        self,
        path: Union[str, Path],
        device: torch.device,
        precision: str = "fp32",
        cache_dir: Union[str, Path, None] = None,
        spin: bool = False,
    ) -> None:
        """spin: let ONNX Runtime's threads spin-wait (see session_options; off in the node)."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise OnnxModelError(
                "running an .onnx model needs onnxruntime",
                source=path,
                fix="pip install onnxruntime (CPU), onnxruntime-gpu (CUDA/TensorRT), or NVIDIA's "
                "onnxruntime wheel on Jetson",
            ) from exc
        path = Path(path).expanduser()
        if not path.is_file():
            raise OnnxModelError(
                "ONNX model not found",
                source=path,
                fix="export one with python -m training.export --onnx",
            )
        available = ort.get_available_providers()
        self.precision = resolve_onnx_precision(precision, device, available, source=path)
        providers = provider_config(
            device, self.precision, available, cache_dir, graph_input_size(path)
        )
        if any(name == TENSORRT for name, _ in providers):
            trt_cache_path(cache_dir).mkdir(parents=True, exist_ok=True)
        try:
            self.session = ort.InferenceSession(
                str(path),
                sess_options=session_options(ort, spin),
                providers=[name for name, _ in providers],
                provider_options=[options for _, options in providers],
            )
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt graphs
            raise OnnxModelError(
                f"not a loadable ONNX model ({exc})", source=path, fix="re-export it"
            ) from exc
        self.providers: list[str] = self.session.get_providers()
        if device.type == "cuda" and not any(p in self.providers for p in GPU_PROVIDERS):
            raise ConfigError(
                f"onnxruntime could not start {' or '.join(GPU_PROVIDERS)} and fell back to "
                f"{', '.join(self.providers)} (missing CUDA/cuDNN/TensorRT libraries?)",
                source=path,
                field="device",
                fix="check the CUDA/cuDNN versions your onnxruntime-gpu needs, " + GPU_WHEEL_FIX,
            )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [
            o.name for o in outputs
        ]:
            raise OnnxModelError(
                f"expected input '{INPUT_NAME}' and output '{OUTPUT_NAME}', found inputs "
                f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}",
                source=path,
                fix="export with space_clip_ros.model.onnx_export "
                "(python -m training.export --onnx)",
            )
        shape = inputs[0].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]) or shape[1] != 3:
            raise OnnxModelError(
                f"input shape {shape} is not (batch, 3, H, W) with a fixed H and W",
                source=path,
                fix="export with space_clip_ros.model.onnx_export",
            )
        self.input_size: tuple[int, int] = (shape[2], shape[3])
        # graphs exported before the resize was recorded were all bilinear
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.input_resize = metadata.get(INPUT_RESIZE_KEY, "bilinear_antialias")
        # graphs exported before the camera was recorded (or from a checkpoint without it): None
        camera = metadata.get(CAMERA_KEY)
        self.camera = camera_from_json(camera, str(path)) if camera else None
        self.device, self.path = device, path
        log.info("ONNX model %s (%s) on %s", path, self.precision, ", ".join(self.providers))

    def to(self, device: torch.device) -> "OnnxSpaceClip":
        return self  # the session's providers were chosen for the device at construction

    def eval(self) -> "OnnxSpaceClip":
        return self

    def __call__(
        self,
        images: torch.Tensor,
        output_size: tuple[int, int] | None = None,
        view: CameraView | None = None,
    ) -> torch.Tensor:
        """SpaceClip.forward's contract, view included (the same torch functions around the
        graph, so both backends see the same pixels and give the same metres)."""
        out_size = tuple(output_size) if output_size is not None else tuple(images.shape[-2:])
        x = (
            resize_to_encoder(images.float(), self.input_size, self.input_resize)
            if view is None
            else view_to_encoder(images.float(), view, self.input_size, self.input_resize)
        )
        (depth,) = self.session.run(
            [OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x.cpu().numpy())}
        )
        depth = torch.from_numpy(depth).to(images.device)
        return (
            resize_bilinear(depth, out_size)
            if view is None
            else view_to_image(depth, view, out_size)
        )
