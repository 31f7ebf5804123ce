"""Reading weight files (torch-format .pt/.pth/.bin and .safetensors), only where it is safe.

`torch.load(weights_only=True)` refuses arbitrary pickled objects, which is what makes a
downloaded backbone file or a training state safe to read, but before torch 2.6 that guard
could be bypassed (CVE-2025-32434: code execution from a crafted file). The requirements ask for
torch >= 2.6; NVIDIA's Jetson wheels can lag behind, so on an older torch the package still runs
and reads .safetensors (which contain no code at all), but refuses every torch-format file.
This module is the one place that decision is made.

Two more guards live here because the libraries lack them: torch.load inflates every record of
a zip archive to its declared size before weights_only sees a single tensor (a 2 MB zip bomb
took 2 GiB and 2.85 GB of peak memory before it was refused), so the declared sizes are checked
first; and safetensors reports a file it may not open as "No such file or directory", so the
file is opened here first and the system's own reason (permission denied) is the one reported.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors.torch import load_file

from space_clip_ros.errors import ConfigError

SAFE_TORCH_LOAD = (2, 6)  # the first release whose weights_only=True is not bypassable
CVE = "CVE-2025-32434"
# torch.save stores its records uncompressed, so its archives declare about their own size in
# contents; twice that (plus room for tiny files) is generous and far below a zip bomb's 1000x.
MAX_DECLARED_RATIO = 2
DECLARED_ALLOWANCE = 1 << 20


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
    check_declared_sizes(Path(path), field)
    return torch.load(path, map_location="cpu", weights_only=True)


def check_declared_sizes(path: Path, field: str) -> None:
    """Refuse a zip archive whose records declare far more bytes than the file holds.

    Only the central directory is read (zipfile), so the check costs microseconds whatever the
    archive claims. Files that are not zip archives (torch's legacy format) pass: torch reads
    them without inflating anything.
    """
    try:
        if not zipfile.is_zipfile(path):
            return
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # unreadable or damaged: torch.load reports it with its own words
    if declared > MAX_DECLARED_RATIO * size + DECLARED_ALLOWANCE:
        raise ConfigError(
            f"a {size}-byte archive declares {declared} bytes of contents, far more than "
            "torch.save writes (a zip bomb?); refused before reading it",
            source=path,
            field=field,
            fix="give the file written by torch.save itself, not a recompressed or crafted copy",
        )


def load_safetensors(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """safetensors.torch.load_file, with the system's reason when the file cannot be opened.

    safetensors turns every failure to open (permission denied included) into "No such file
    or directory"; opening the file here first raises the OSError that says what is wrong.
    """
    with open(path, "rb"):
        pass
    return load_file(str(path))
