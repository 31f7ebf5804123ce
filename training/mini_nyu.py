"""A few-image NYU Depth v2 in the BTS/AdaBins on-disk layout, for tests and smoke runs without NYU.

    python -m training.mini_nyu /tmp/mini_nyu

Writes what training/datasets.py reads for ``data.dataset: nyu`` (the lists have the real names,
so ``training/configs/nyu.yaml`` works with only ``data.root`` changed)::

    <root>/sync/<scene>/rgb_00045.jpg, sync_depth_00045.png               training scenes
    <root>/official_splits/test/<category>/rgb_00045.jpg, sync_depth_00045.png   test split
    <root>/splits/nyudepthv2_train_files_with_gt.txt   '/<scene>/rgb_00045.jpg /<scene>/sync_depth_00045.png 518.8579'
    <root>/splits/nyudepthv2_test_files_with_gt.txt    '<category>/rgb_00045.jpg <category>/sync_depth_00045.png 518.8579'

Frames are 640x480 like NYU. The scenes are learnable rooms (floor, ceiling, a back wall, boxes of
furniture; brightness tied to depth, a texture) with a window beyond the 10 m cap. Depth is uint16
millimetres, 0 = invalid: a blank registration border and a few Kinect-like holes are 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from space_clip_ros.io.depth_files import NYU_DEPTH_SCALE, write_png16
from training.datasets import NYU_TEST_DIR, NYU_TRAIN_DIR
from training.mini_kitti import MiniDataset, mini_dataset_main

TRAIN_SCENES = ("kitchen_0028a", "bedroom_0004")
TEST_CATEGORIES = ("kitchen", "bathroom")
FOCAL = 518.8579
TRAIN_LIST = "splits/nyudepthv2_train_files_with_gt.txt"
TEST_LIST = "splits/nyudepthv2_test_files_with_gt.txt"
BORDER = (
    8,
    16,
)  # rows, columns of blank border (depth 0), inside the 45/43-pixel box the loaders drop
HOLE_DENSITY = 0.05


def synthetic_room(
    rng: np.random.Generator, height: int = 480, width: int = 640
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, float32 dense depth in metres) of an indoor scene, depth in about 0.8..12 m."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    wall = float(rng.uniform(4.0, 8.0))
    horizon = height * float(rng.uniform(0.4, 0.6))
    plane = 1.5 * height / np.maximum(np.abs(rows - horizon), 1.0)  # floor below, ceiling above
    depth = np.broadcast_to(np.minimum(plane, wall), (height, width)).copy()
    side = (
        0.75 * width / np.maximum(np.abs(cols - width / 2), 1.0)
    )  # side walls, receding to the centre
    depth = np.minimum(depth, np.broadcast_to(side, (height, width)))
    wh, ww = height // 6, width // 6  # a window on the back wall, beyond NYU's 10 m cap
    wt, wl = int(horizon) - wh, int(rng.integers(width // 4, width - width // 4 - ww))
    depth[wt : wt + wh, wl : wl + ww] = np.where(
        depth[wt : wt + wh, wl : wl + ww] >= wall, 12.0, depth[wt : wt + wh, wl : wl + ww]
    )
    for _ in range(3):
        h, w = (
            int(rng.integers(height // 6, height // 3)),
            int(rng.integers(width // 8, width // 4)),
        )
        top, left = (
            int(rng.integers(int(horizon) - h // 2, height - h)),
            int(rng.integers(0, width - w)),
        )
        depth[top : top + h, left : left + w] = np.minimum(
            depth[top : top + h, left : left + w], rng.uniform(0.8, 4.0)
        )
    depth = np.clip(depth, 0.5, 12.0)
    shade = 1.0 - np.log(depth) / np.log(15.0)
    texture = rng.uniform(0.85, 1.0, size=(height, width, 1))
    tint = rng.uniform(0.7, 1.0, size=3)
    image = np.clip(shade[..., None] * texture * tint * 255.0, 0, 255).astype(np.uint8)
    return image, depth.astype(np.float32)


def _write_frame(
    folder: Path, frame: int, size: tuple[int, int], rng: np.random.Generator
) -> tuple[str, str]:
    image, depth = synthetic_room(rng, *size)
    invalid = rng.random(depth.shape) < HOLE_DENSITY
    (
        invalid[: BORDER[0]],
        invalid[-BORDER[0] :],
        invalid[:, : BORDER[1]],
        invalid[:, -BORDER[1] :],
    ) = True, True, True, True
    image[: BORDER[0]], image[-BORDER[0] :], image[:, : BORDER[1]], image[:, -BORDER[1] :] = (
        255,
        255,
        255,
        255,
    )  # white border
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
) -> MiniDataset:
    """Write sync/, official_splits/test/ and splits/ under root (n images each, spread over two scenes)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for i in range(n_train):
        scene = TRAIN_SCENES[i % len(TRAIN_SCENES)]
        rgb, gt = _write_frame(root / NYU_TRAIN_DIR / scene, 45 + i, size, rng)
        train.append(f"/{scene}/{rgb} /{scene}/{gt} {FOCAL}")
    for i in range(n_test):
        category = TEST_CATEGORIES[i % len(TEST_CATEGORIES)]
        rgb, gt = _write_frame(root / NYU_TEST_DIR / category, 1 + i, size, rng)
        test.append(f"{category}/{rgb} {category}/{gt} {FOCAL}")
    train_list, test_list = root / TRAIN_LIST, root / TEST_LIST
    train_list.parent.mkdir(parents=True, exist_ok=True)
    train_list.write_text("\n".join(train) + "\n")
    test_list.write_text("\n".join(test) + "\n")
    return MiniDataset(root, train_list, test_list)


def main() -> None:
    mini_dataset_main(
        make_mini_nyu, "Write a mini NYU Depth v2 tree (BTS/AdaBins layout) for smoke runs."
    )


if __name__ == "__main__":
    main()
