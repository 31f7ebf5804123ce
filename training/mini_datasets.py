"""Few-image datasets in KITTI's and NYU Depth v2's on-disk layouts, for tests and smoke runs.

    python -m training.mini_datasets kitti /tmp/mini_kitti
    python -m training.mini_datasets nyu /tmp/mini_nyu --train 8 --test 4

Both write what training/datasets.py reads, with the real list names, so the real configs work
with only ``data.root`` changed (and, for KITTI's small frames, tiny.yaml's crop sizes). Each
training list covers two drives or scene groups, and training/splits.py holds one out for
validation exactly as on the real data (``<prefix>_train_minus_val.txt``, ``<prefix>_val.txt``):

KITTI (Eigen split, ``data_depth_annotated``): learnable road-like scenes (a ground plane whose
depth grows towards the horizon, a few boxes; brightness tied to depth, a texture) so a few
optimiser steps visibly reduce the error. Ground truth is sparse like the projected LiDAR of
``data_depth_annotated`` (uint16 PNG, metres * 256, 0 = no measurement)::

    <root>/raw/2011_09_26/<drive>/image_02/data/0000000005.png
    <root>/annotated/{train,val}/<drive>/proj_depth/groundtruth/image_02/0000000005.png
    <root>/splits/kitti_eigen_{train,test}_files_with_gt.txt, kitti_eigen_{train_minus_val,val}.txt

NYU Depth v2 (BTS/AdaBins layout, 640x480 frames): learnable rooms (floor, ceiling, a back
wall, boxes of furniture; brightness tied to depth, a texture) with a window beyond the 10 m cap.
Depth is uint16 millimetres, 0 = invalid: a blank registration border and a few Kinect-like
holes are 0::

    <root>/sync/<scene>/rgb_00045.jpg, sync_depth_00045.png                      training
    <root>/official_splits/test/<category>/rgb_00045.jpg, sync_depth_00045.png   test split
    <root>/splits/nyudepthv2_{train,test}_files_with_gt.txt, nyudepthv2_{train_minus_val,val}.txt
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from space_clip_ros.errors import ConfigError, run_tool
from space_clip_ros.io.atomic import atomic_dir
from space_clip_ros.io.depth_files import NYU_DEPTH_SCALE, write_png16
from training.datasets import NYU_TEST_DIR, NYU_TRAIN_DIR
from training.splits import SPECS, make_split


@dataclass(frozen=True)
class MiniDataset:
    """A generated mini dataset: its root and BTS/AdaBins file lists (KITTI and NYU alike).

    train_list is the training list minus the held-out validation group (what the recipes train
    on), val_list the held-out group, test_list the test split.
    """

    root: Path
    train_list: Path
    test_list: Path
    val_list: Path


def _write_lists(root: Path, dataset: str, train: list, test: list, val_group: str):
    """The full training and the test list, then the validation hold-out by training/splits.py.

    The generated groups are named so that the default seed holds out val_group; that is checked,
    so a change to the draw cannot silently swap the mini dataset's train and val sizes.
    """
    spec = SPECS[dataset]
    for rel, lines in ((spec.source, train), (spec.test_list, test)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    manifest = make_split(spec, root)
    if manifest["groups"]["val"] != [val_group]:
        raise RuntimeError(
            f"the default seed held out {manifest['groups']['val']}, not {val_group}: rename "
            "the mini dataset's groups"
        )
    train_list, val_list, _ = spec.outputs(root)
    return MiniDataset(root, train_list, root / spec.test_list, val_list)


# --------------------------------------------------------------------------------------------
# KITTI

KITTI_TRAIN_DRIVE = "2011_09_26_drive_0001_sync"
KITTI_VAL_DRIVE = "2011_09_26_drive_0005_sync"  # the training drive the default seed holds out
KITTI_TEST_DRIVE = "2011_09_26_drive_0002_sync"
KITTI_FOCAL = 721.5377  # the list's focal is the full-resolution one, as in the real lists
FIRST_ANNOTATED = 5  # data_depth_annotated leaves out the first and last 5 frames of a drive
GT_DENSITY = 0.3


def synthetic_road(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, float32 dense depth in metres) of a road-like scene.

    Learnable on purpose (brightness tied to depth, a texture), so the training tests can see a
    tiny model overfit in a few dozen steps; the procedural street (space_clip_ros.scenes) is
    too rich for that and serves the KITTI drive and the node's demo instead.
    """
    rows = np.arange(height, dtype=np.float32)[:, None]
    horizon = height * 0.35
    ground = 3.0 * height / np.maximum(rows - horizon, 1.0)
    depth = np.broadcast_to(np.minimum(ground, 70.0), (height, width)).copy()
    for _ in range(3):
        h, w = rng.integers(height // 6, height // 3), rng.integers(width // 10, width // 4)
        top, left = rng.integers(int(horizon) - h // 2, height - h), rng.integers(0, width - w)
        box = depth[top : top + h, left : left + w]
        np.minimum(box, rng.uniform(4.0, 30.0), out=box)
    shade = 1.0 - np.log(depth) / np.log(80.0)
    texture = rng.uniform(0.85, 1.0, size=(height, width, 1))
    tint = rng.uniform(0.7, 1.0, size=3)
    image = np.clip(shade[..., None] * texture * tint * 255.0, 0, 255).astype(np.uint8)
    return image, depth.astype(np.float32)


def _write_kitti_drive(
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
        image, depth = synthetic_road(rng, *size)
        name = f"{i:010d}.png"
        image_path = root / "raw" / date / drive / "image_02" / "data" / name
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path)
        if FIRST_ANNOTATED <= i < FIRST_ANNOTATED + frames:
            gt_rel = f"{drive}/proj_depth/groundtruth/image_02/{name}"
            gt_path = root / "annotated" / split / gt_rel
            gt_path.parent.mkdir(parents=True, exist_ok=True)
            keep = rng.random(depth.shape) < GT_DENSITY  # sparse like projected LiDAR
            write_png16(gt_path, np.where(keep, depth, 0.0).astype(np.float32))
            lines.append(f"{date}/{drive}/image_02/data/{name} {gt_rel} {KITTI_FOCAL}")
    return lines


def make_mini_kitti(
    root: Path,
    n_train: int = 4,
    n_test: int = 2,
    size: tuple[int, int] = (60, 160),
    seed: int = 0,
    n_val: int = 2,
) -> MiniDataset:
    """raw/, annotated/{train,val}/ and splits/ under root; the test list has one 'None' line.

    n_train frames in KITTI_TRAIN_DRIVE, n_val in KITTI_VAL_DRIVE (both on the Eigen training
    list; the split holds the second out), n_test in KITTI_TEST_DRIVE. size is (height, width).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    train = _write_kitti_drive(root, KITTI_TRAIN_DRIVE, "train", n_train, size, rng)
    test = _write_kitti_drive(root, KITTI_TEST_DRIVE, "val", n_test, size, rng)
    test.append(
        f"{KITTI_TEST_DRIVE[:10]}/{KITTI_TEST_DRIVE}/image_02/data/{0:010d}.png None {KITTI_FOCAL}"
    )
    train += _write_kitti_drive(root, KITTI_VAL_DRIVE, "train", n_val, size, rng)
    return _write_lists(root, "kitti", train, test, KITTI_VAL_DRIVE.removesuffix("_sync"))


# --------------------------------------------------------------------------------------------
# NYU Depth v2

NYU_TRAIN_SCENES = ("bedroom_0004", "kitchen_0028a")
NYU_VAL_SCENES = ("bedroom_0016a", "bedroom_0016b")  # one group, which the default seed holds out
NYU_TEST_CATEGORIES = ("kitchen", "bathroom")
NYU_FOCAL = 518.8579
NYU_BORDER = (8, 16)  # rows, columns of blank border (depth 0), inside the box the loaders drop
NYU_HOLE_DENSITY = 0.05


def synthetic_room(
    rng: np.random.Generator, height: int = 480, width: int = 640
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, float32 dense depth in metres) of an indoor scene, about 0.8..12 m."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    wall = float(rng.uniform(4.0, 8.0))
    horizon = height * float(rng.uniform(0.4, 0.6))
    plane = 1.5 * height / np.maximum(np.abs(rows - horizon), 1.0)  # floor below, ceiling above
    depth = np.broadcast_to(np.minimum(plane, wall), (height, width)).copy()
    side = 0.75 * width / np.maximum(np.abs(cols - width / 2), 1.0)  # side walls
    depth = np.minimum(depth, np.broadcast_to(side, (height, width)))
    wh, ww = height // 6, width // 6  # a window on the back wall, beyond NYU's 10 m cap
    wt, wl = int(horizon) - wh, int(rng.integers(width // 4, width - width // 4 - ww))
    window = depth[wt : wt + wh, wl : wl + ww]
    window[window >= wall] = 12.0
    for _ in range(3):  # furniture
        h = int(rng.integers(height // 6, height // 3))
        w = int(rng.integers(width // 8, width // 4))
        top = int(rng.integers(int(horizon) - h // 2, height - h))
        left = int(rng.integers(0, width - w))
        box = depth[top : top + h, left : left + w]
        np.minimum(box, rng.uniform(0.8, 4.0), out=box)
    depth = np.clip(depth, 0.5, 12.0)
    shade = 1.0 - np.log(depth) / np.log(15.0)
    texture = rng.uniform(0.85, 1.0, size=(height, width, 1))
    tint = rng.uniform(0.7, 1.0, size=3)
    image = np.clip(shade[..., None] * texture * tint * 255.0, 0, 255).astype(np.uint8)
    return image, depth.astype(np.float32)


def _write_nyu_frame(
    folder: Path, frame: int, size: tuple[int, int], rng: np.random.Generator
) -> tuple[str, str]:
    image, depth = synthetic_room(rng, *size)
    invalid = rng.random(depth.shape) < NYU_HOLE_DENSITY
    border = np.ones(depth.shape, bool)
    border[NYU_BORDER[0] : -NYU_BORDER[0], NYU_BORDER[1] : -NYU_BORDER[1]] = False
    invalid |= border
    image[border] = 255  # NYU's white registration border
    folder.mkdir(parents=True, exist_ok=True)
    rgb, gt = f"rgb_{frame:05d}.jpg", f"sync_depth_{frame:05d}.png"
    Image.fromarray(image).save(folder / rgb, quality=95)
    write_png16(folder / gt, np.where(invalid, 0.0, depth).astype(np.float32), NYU_DEPTH_SCALE)
    return rgb, gt


def make_mini_nyu(
    root: Path,
    n_train: int = 4,
    n_test: int = 2,
    size: tuple[int, int] = (480, 640),
    seed: int = 0,
    n_val: int = 2,
) -> MiniDataset:
    """sync/, official_splits/test/ and splits/ under root, images spread over two scenes each.

    n_train frames in NYU_TRAIN_SCENES, n_val in NYU_VAL_SCENES (one scene group, held out by
    the split), n_test in two test categories. size is (height, width).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for i in range(n_train):
        scene = NYU_TRAIN_SCENES[i % len(NYU_TRAIN_SCENES)]
        rgb, gt = _write_nyu_frame(root / NYU_TRAIN_DIR / scene, 45 + i, size, rng)
        train.append(f"/{scene}/{rgb} /{scene}/{gt} {NYU_FOCAL}")
    for i in range(n_test):
        category = NYU_TEST_CATEGORIES[i % len(NYU_TEST_CATEGORIES)]
        rgb, gt = _write_nyu_frame(root / NYU_TEST_DIR / category, 1 + i, size, rng)
        test.append(f"{category}/{rgb} {category}/{gt} {NYU_FOCAL}")
    for i in range(n_val):
        scene = NYU_VAL_SCENES[i % len(NYU_VAL_SCENES)]
        rgb, gt = _write_nyu_frame(root / NYU_TRAIN_DIR / scene, 45 + i, size, rng)
        train.append(f"/{scene}/{rgb} /{scene}/{gt} {NYU_FOCAL}")
    return _write_lists(root, "nyu", train, test, "bedroom_0016")


# --------------------------------------------------------------------------------------------
# Command line

PROG = "python -m training.mini_datasets"
MAKERS: dict[str, Callable[..., MiniDataset]] = {"kitti": make_mini_kitti, "nyu": make_mini_nyu}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write a mini KITTI or NYU Depth v2 tree for smoke runs and tests.",
    )
    parser.add_argument("dataset", choices=sorted(MAKERS))
    parser.add_argument("root", type=Path, help="output folder (must not exist or be empty)")
    parser.add_argument("--train", type=int, default=8, help="training images (default 8)")
    parser.add_argument("--test", type=int, default=4, help="test images (default 4)")
    parser.add_argument(
        "--val", type=int, default=2, help="images of the held-out validation group (default 2)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Generate into a staging folder, then rename (io/atomic): an interrupted run leaves no
    half dataset."""
    return run_tool(PROG, _main, argv)


def _main(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    if min(args.train, args.test, args.val) < 1:
        raise ConfigError(
            f"need at least one image per split, got {args.train}, {args.test} and {args.val}",
            field="--train/--test/--val",
            fix="give --train N --test N --val N with N >= 1",
        )
    with atomic_dir(
        args.root, exists_fix="choose a new folder or delete this one", replace_empty=True
    ) as staged:
        MAKERS[args.dataset](staged, args.train, args.test, seed=args.seed, n_val=args.val)
    print(f"wrote {args.dataset} mini dataset to {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
