"""SPACE-CLIP in pure PyTorch: one definition for the node, the CLI, training and export."""

from .backbone import BackboneWeightsError, ClipVisionBackbone
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import BackboneConfig, ConfigError, DecoderConfig, SpaceClipConfig
from .space_clip import SpaceClip, build_model, count_parameters

__all__ = [
    "BackboneConfig",
    "BackboneWeightsError",
    "CheckpointError",
    "ClipVisionBackbone",
    "ConfigError",
    "DecoderConfig",
    "SpaceClip",
    "SpaceClipConfig",
    "build_model",
    "count_parameters",
    "load_checkpoint",
    "save_checkpoint",
]
