"""Which model runs and where: the flags of every tool that loads one, and the one construction.

`space-clip-predict`, `space-clip-verify` and `space-clip-demo` declare these flags with
`ModelOptions.add_to(parser)` and build their estimator with `ModelOptions.from_settings(args)
.load()`; the depth node builds its own from its parameters of the same names
(`from_settings(NodeConfig)`), so a flag and a parameter mean the same thing everywhere and the
model is constructed in one place. An empty value means "not given", on a command line as in a
parameter (`--checkpoint ""` runs the untrained model, like `checkpoint:=""`).

A new setting the model needs (camera intrinsics, say) is one more field here: declared in
`add_to`, read in `from_settings`, used in `load`; every tool that loads a model takes it
without being edited, and the node passes the parameter of the same name.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Optional

from space_clip_ros.errors import RuntimeFailure, SpaceClipError, quote
from space_clip_ros.runtime_choices import PRECISION_CHOICES

if TYPE_CHECKING:  # torch is imported by load(), after the command line is parsed
    from space_clip_ros.inference import DepthEstimator

ArgumentGroup = Any  # argparse's _ArgumentGroup, which it does not export


def _given(text: str) -> Optional[str]:
    """argparse type of the optional values: '' is 'not given', as for the node's parameters."""
    return text or None


@dataclass(frozen=True)
class ModelOptions:
    """The checkpoint, the CLIP tower's weights, the device, the precision, TensorRT's cache."""

    checkpoint: Optional[str] = None  # None: the untrained model (loudly)
    backbone_weights: Optional[str] = None  # None: as the checkpoint's config says
    device: str = "auto"
    precision: str = "auto"
    trt_cache_dir: Optional[str] = None  # None: onnx_runtime.DEFAULT_TRT_CACHE_DIR

    @staticmethod
    def add_to(parser: argparse.ArgumentParser, title: str = "model") -> ArgumentGroup:
        """Declare the flags in a group of `parser`; returned so a tool can add its own
        model-related flags (--batch-size) beside them."""
        group = parser.add_argument_group(title)
        group.add_argument(
            "--checkpoint",
            type=_given,
            metavar="DIR",
            help="trained checkpoint: a directory with decoder.safetensors + config.yaml (or the "
            ".safetensors file), or an exported .onnx graph (ONNX Runtime). Without it (or empty) "
            "an UNTRAINED model runs and the depth is meaningless.",
        )
        group.add_argument(
            "--backbone-weights",
            type=_given,
            metavar="TAG_OR_FILE",
            help="where the frozen CLIP backbone's weights come from, overriding the checkpoint's "
            "config: an open_clip pretrained tag or a local file",
        )
        group.add_argument(
            "--device",
            default="auto",
            help="auto (CUDA if present), cpu, cuda or cuda:N (default: auto)",
        )
        group.add_argument(
            "--precision",
            default="auto",
            choices=PRECISION_CHOICES,
            help="inference precision; auto: fp16 on CUDA, bf16 on a CPU with native bf16, fp32 "
            "otherwise; an .onnx graph runs fp32, or fp16 through TensorRT (default: auto)",
        )
        group.add_argument(
            "--trt-cache-dir",
            type=_given,
            metavar="DIR",
            help="TensorRT engine and timing caches for an .onnx checkpoint, so the engine is "
            "built once (default: ~/.cache/space_clip_ros/trt)",
        )
        return group

    @classmethod
    def from_settings(cls, settings: Any) -> "ModelOptions":
        """The options held by anything with these attribute names: parsed arguments, or the
        node's NodeConfig ('' meaning not given). A weights source no file system can be asked
        about is refused here, before anything loads."""
        options = cls(**{f.name: getattr(settings, f.name) or f.default for f in fields(cls)})
        if options.backbone_weights is not None:
            from space_clip_ros.model.config import check_weights_source  # imports torch

            flag = isinstance(settings, argparse.Namespace)
            check_weights_source(
                options.backbone_weights, "--backbone-weights" if flag else "backbone_weights"
            )
        return options

    def load(self) -> "DepthEstimator":
        """The estimator (inference/estimator.DepthEstimator.from_checkpoint). Errors a user can
        fix keep their class; torch or the disk failing while loading is a RuntimeFailure."""
        from space_clip_ros.inference import DepthEstimator  # torch: only once a model loads

        try:
            return DepthEstimator.from_checkpoint(
                self.checkpoint,
                device=self.device,
                precision=self.precision,
                backbone_weights=self.backbone_weights,
                trt_cache_dir=self.trt_cache_dir,
            )
        except SpaceClipError:
            raise
        except (RuntimeError, OSError) as exc:
            raise RuntimeFailure(f"loading the model failed: {quote(str(exc))}") from exc

    def node_parameters(self) -> dict[str, str]:
        """The same settings as the depth node's parameters ('' for not given)."""
        return {f.name: getattr(self, f.name) or "" for f in fields(self)}
