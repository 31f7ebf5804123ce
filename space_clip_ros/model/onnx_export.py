"""The whole SpaceClip (frozen backbone + decoder) as an ONNX graph, checked against PyTorch.

Lives beside the model rather than in training/ because deployment uses it too: the node and
the CLI run exported graphs with ONNX Runtime (space_clip_ros.inference.onnx_runtime; TensorRT
or CUDA execution providers on Jetson and desktop GPUs). The graph takes ``image``: float32 RGB in
[0, 1], (batch, 3, H, W) at the encoder input size, and returns ``depth``: (batch, 1, H, W)
metres at that size; the batch axis is dynamic.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from space_clip_ros.io.atomic import atomic_path

from .space_clip import SpaceClip

INPUT_NAME, OUTPUT_NAME = "image", "depth"
# Graph metadata naming backbone.input_resize: the resize to the encoder happens outside the
# graph, and the ONNX backend must do it the way the checkpoint was trained.
INPUT_RESIZE_KEY = "space_clip.input_resize"
# The training camera (config.yaml's `camera`, JSON), so a graph maps inputs as its checkpoint did.
CAMERA_KEY = "space_clip.camera"


def export_onnx(model: SpaceClip, path: Path, opset: int = 17, batch: int = 1) -> Path:
    """Trace the whole model at the encoder input size with a dynamic batch axis."""
    model = model.eval().float()
    h, w = model.input_size
    # On the model's device: a CUDA model traced with a CPU dummy fails (bench --device cuda did).
    dummy = torch.rand(batch, 3, h, w, device=next(model.parameters()).device)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a failed export leaves no half-written graph
        _trace(model, dummy, tmp, opset)
        import onnx  # the exporter's own dependency; not needed to run the graph

        graph = onnx.load(str(tmp))
        entry = graph.metadata_props.add()
        entry.key, entry.value = INPUT_RESIZE_KEY, model.config.backbone.input_resize
        if model.config.camera is not None:
            entry = graph.metadata_props.add()
            entry.key = CAMERA_KEY
            entry.value = json.dumps(dataclasses.asdict(model.config.camera))
        onnx.save(graph, str(tmp))
    return path


def _trace(model: SpaceClip, dummy: torch.Tensor, path: Path, opset: int) -> None:
    """torch.onnx.export, with the fused attention kernel off: it has no ONNX symbolic."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter (needs no onnxscript); shape checks traced as constants
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def check_onnx(model: SpaceClip, path: Path, batch: int = 2, seed: int = 0) -> float:
    """Max |onnxruntime - PyTorch| in metres on random images, at a batch size not traced."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    h, w = model.input_size
    images = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model.eval().float()(images).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    if got.shape != expected.shape:
        raise RuntimeError(
            f"{path}: ONNX output shape {got.shape} differs from PyTorch {expected.shape}"
        )
    return float(np.max(np.abs(got - expected)))
