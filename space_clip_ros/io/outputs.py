"""Where a prediction lands on disk: one stem, one file per requested format, named side by side.

The offline predictor and the demo write the same names (``<stem>_depth.png``, ``_depth.npy``,
``_preview.png``; synthetic frames add ``_rgb.png``, ``_gt.png``, ``_gt_preview.png``) so their
folders can be compared file for file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
from PIL import Image

from space_clip_ros.io import depth_files
from space_clip_ros.io.atomic import atomic_path, atomic_paths

if TYPE_CHECKING:
    from space_clip_ros.scenes.street import SyntheticFrame

FORMATS = ("png16", "npy", "preview")
# Outputs sit next to each other in one folder, so each kind gets its own name suffix.
OUTPUT_SUFFIX = {"png16": "_depth.png", "npy": "_depth.npy", "preview": "_preview.png"}


def write_outputs(
    depth: np.ndarray, out_stem: Path, formats: Iterable[str], min_depth: float, max_depth: float
) -> None:
    """One frame's files, all or none (io/atomic.atomic_paths): a full disk half-way through
    must not leave a complete-looking `_depth.png` without its `.npy` and preview."""
    formats = tuple(formats)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    targets = [out_stem.parent / (out_stem.name + OUTPUT_SUFFIX[fmt]) for fmt in formats]
    with atomic_paths(targets) as staged:
        for fmt, path in zip(formats, staged):
            if fmt == "png16":
                depth_files.write_png16(path, depth)
            elif fmt == "npy":
                depth_files.write_npy(path, depth)
            else:
                depth_files.write_preview(path, depth, min_depth, max_depth)


def write_synthetic_frame(
    out_dir: Path,
    frame: "SyntheticFrame",
    depth: np.ndarray,
    formats: Iterable[str],
    min_depth: float,
    max_depth: float,
) -> None:
    """A synthetic frame's RGB, exact ground truth (16-bit, + preview) and predictions.

    All named <index>_*.
    """
    stem = out_dir / f"{frame.index:06d}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(stem.with_name(stem.name + "_rgb.png")) as tmp:
        Image.fromarray(frame.rgb).save(tmp, format="PNG")
    depth_files.write_png16(stem.with_name(stem.name + "_gt.png"), frame.depth)
    formats = tuple(formats)
    if "preview" in formats:
        depth_files.write_preview(
            stem.with_name(stem.name + "_gt_preview.png"), frame.depth, min_depth, max_depth
        )
    write_outputs(depth, stem, formats, min_depth, max_depth)
