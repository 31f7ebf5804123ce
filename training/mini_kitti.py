"""A few-image dataset in KITTI's exact on-disk layout, for tests and smoke runs without KITTI.

    python -m training.mini_kitti /tmp/mini_kitti

The scenes are learnable on purpose: a ground plane whose depth grows towards the horizon and a
few boxes at random distances, with image brightness tied to depth and a texture, so a few
optimiser steps visibly reduce the error. Ground truth is sparse like the projected LiDAR of
``data_depth_annotated`` (uint16 PNG, metres * 256, 0 = no measurement).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from space_clip_ros.io.depth_files import write_png16

TRAIN_DRIVE = "2011_09_26_drive_0001_sync"
TEST_DRIVE = "2011_09_26_drive_0002_sync"
FOCAL = 721.5377
FIRST_ANNOTATED = 5  # data_depth_annotated leaves out the first and last 5 frames of a drive


@dataclass
class MiniDataset:
    """A generated mini dataset: its root and BTS/AdaBins file lists (KITTI and NYU alike)."""

    root: Path
    train_list: Path
    test_list: Path


def synthetic_scene(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, float32 dense depth in metres) of a road-like scene."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    horizon = height * 0.35
    ground = 3.0 * height / np.maximum(rows - horizon, 1.0)
    depth = np.broadcast_to(np.minimum(ground, 70.0), (height, width)).copy()
    for _ in range(3):
        h, w = rng.integers(height // 6, height // 3), rng.integers(width // 10, width // 4)
        top, left = rng.integers(int(horizon) - h // 2, height - h), rng.integers(0, width - w)
        depth[top : top + h, left : left + w] = np.minimum(
            depth[top : top + h, left : left + w], rng.uniform(4.0, 30.0)
        )
    shade = 1.0 - np.log(depth) / np.log(80.0)
    texture = rng.uniform(0.85, 1.0, size=(height, width, 1))
    tint = rng.uniform(0.7, 1.0, size=3)
    image = np.clip(shade[..., None] * texture * tint * 255.0, 0, 255).astype(np.uint8)
    return image, depth.astype(np.float32)


def write_depth_png(
    path: Path, depth: np.ndarray, density: float, rng: np.random.Generator
) -> None:
    """Keep a random `density` share of the pixels, as LiDAR ground truth is sparse."""
    keep = rng.random(depth.shape) < density
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png16(path, np.where(keep, depth, 0.0).astype(np.float32))


def _write_drive(
    root: Path,
    drive: str,
    split: str,
    frames: int,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> list[str]:
    date = drive[:10]
    lines = []
    for i in range(frames + 2 * FIRST_ANNOTATED):
        image, depth = synthetic_scene(rng, *size)
        name = f"{i:010d}.png"
        image_path = root / "raw" / date / drive / "image_02" / "data" / name
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path)
        if FIRST_ANNOTATED <= i < FIRST_ANNOTATED + frames:
            gt_rel = f"{drive}/proj_depth/groundtruth/image_02/{name}"
            write_depth_png(root / "annotated" / split / gt_rel, depth, 0.3, rng)
            lines.append(f"{date}/{drive}/image_02/data/{name} {gt_rel} {FOCAL}")
    return lines


def make_mini_kitti(
    root: Path, n_train: int = 4, n_test: int = 2, size: tuple[int, int] = (60, 160), seed: int = 0
) -> MiniDataset:
    """Write raw/, annotated/{train,val}/ and splits/ under root; the test list has one 'None' line."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    train = _write_drive(root, TRAIN_DRIVE, "train", n_train, size, rng)
    test = _write_drive(root, TEST_DRIVE, "val", n_test, size, rng)
    test.append(f"{TEST_DRIVE[:10]}/{TEST_DRIVE}/image_02/data/{0:010d}.png None {FOCAL}")
    splits = root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    train_list, test_list = splits / "train.txt", splits / "test.txt"
    train_list.write_text("\n".join(train) + "\n")
    test_list.write_text("\n".join(test) + "\n")
    return MiniDataset(root, train_list, test_list)


def mini_dataset_main(make: Callable[[Path, int, int], MiniDataset], description: str) -> None:
    """The command line shared by the mini dataset generators: root, --train N, --test N."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=8)
    parser.add_argument("--test", type=int, default=4)
    args = parser.parse_args()
    mini = make(args.root, args.train, args.test)
    print(f"wrote {mini.root} (lists: {mini.train_list}, {mini.test_list})")


def main() -> None:
    mini_dataset_main(make_mini_kitti, "Write a mini KITTI tree for smoke runs.")


if __name__ == "__main__":
    main()
