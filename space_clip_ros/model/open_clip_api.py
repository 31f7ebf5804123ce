"""The one place that touches open_clip internals, so an open_clip upgrade breaks in one place.

The backbone adapter needs three things open_clip does not export: the vision-tower factory
(`open_clip.model._build_vision_tower`, private) with its config type `CLIPVisionCfg`, the
native tower class (`open_clip.transformer.VisionTransformer`, whose submodules the adapter
walks) and the file fetcher `open_clip.pretrained.download_pretrained`. They have kept their
names and signatures across the range requirements/runtime.txt allows; if a release moves them,
importing this module fails with a message naming that range instead of an AttributeError deep
inside model building.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from space_clip_ros.errors import message

# Keep equal to the open_clip_torch bounds in requirements/runtime.txt.
SUPPORTED_OPEN_CLIP = ">=2.24,<4"
VERIFIED_OPEN_CLIP = "3.3.0"  # the version the test suite last ran against


def _installed() -> str:
    try:
        return version("open_clip_torch")
    except PackageNotFoundError:
        return "not installed"


try:
    from open_clip.model import CLIPVisionCfg
    from open_clip.model import _build_vision_tower as build_vision_tower
    from open_clip.pretrained import download_pretrained
    from open_clip.transformer import VisionTransformer
except ImportError as exc:  # a moved or renamed internal
    raise ImportError(
        message(
            f"space_clip_ros needs open_clip_torch{SUPPORTED_OPEN_CLIP} (verified with "
            f"{VERIFIED_OPEN_CLIP}); installed: {_installed()}, and its internals differ ({exc})",
            fix=f"pip install 'open_clip_torch{SUPPORTED_OPEN_CLIP}'",
        )
    ) from exc

__all__ = [
    "CLIPVisionCfg",
    "SUPPORTED_OPEN_CLIP",
    "VERIFIED_OPEN_CLIP",
    "VisionTransformer",
    "build_vision_tower",
    "download_pretrained",
]
