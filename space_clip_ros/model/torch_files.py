"""Reading torch-format (.pt/.pth/.bin) files, only where doing so is safe.

`torch.load(weights_only=True)` refuses arbitrary pickled objects, which is what makes a
downloaded backbone file or a training state safe to read, but before torch 2.6 that guard
could be bypassed (CVE-2025-32434: code execution from a crafted file). The requirements ask for
torch >= 2.6; NVIDIA's Jetson wheels can lag behind, so on an older torch the package still runs
and reads .safetensors (which contain no code at all), but refuses every torch-format file.
This module is the one place that decision is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import torch

from space_clip_ros.errors import ConfigError

SAFE_TORCH_LOAD = (2, 6)  # the first release whose weights_only=True is not bypassable
CVE = "CVE-2025-32434"


def torch_version(text: Optional[str] = None) -> tuple[int, int]:
    """(major, minor) of the running torch (or of `text`, e.g. '2.5.0a0+nv24.08')."""
    major, minor = (text or torch.__version__).split("+")[0].split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def load_torch_file(path: Union[str, Path], *, field: str, version: Optional[str] = None) -> Any:
    """torch.load(path, weights_only=True) on torch >= 2.6; a ConfigError naming field otherwise.

    `field` is what the user set to point at the file (e.g. 'backbone.pretrained', 'run.resume'),
    so the message says what to change. `version` overrides torch.__version__ (tests).
    """
    if torch_version(version) < SAFE_TORCH_LOAD:
        raise ConfigError(
            f"refusing to read a torch-format file with torch {version or torch.__version__}: "
            f"before {SAFE_TORCH_LOAD[0]}.{SAFE_TORCH_LOAD[1]} weights_only=True can be "
            f"bypassed by a crafted file ({CVE})",
            source=path,
            field=field,
            fix="convert the file to .safetensors on a machine with torch >= 2.6 "
            "(safetensors.torch.save_file(torch.load(f, weights_only=True), 'x.safetensors')), "
            "or upgrade torch",
        )
    return torch.load(path, map_location="cpu", weights_only=True)
