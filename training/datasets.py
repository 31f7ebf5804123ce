"""KITTI Eigen split (annotated depth) and NYU Depth v2, the paper's augmentations, eval items.

File lists use the BTS/AdaBins format, one sample per line:
``<date>/<drive>_sync/image_02/data/<frame>.png <depth> <focal>`` with ``<depth>`` =
``<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png``
(``None`` instead of the depth path where a frame has no annotated depth; older BTS lists omit the
leading date folder, which is accepted). Images are read from ``<root>/raw/``, depth from
``<root>/annotated/train/`` or ``<root>/annotated/val/`` (whichever holds the drive).

NYU Depth v2 (``data.dataset: nyu``) uses the BTS/AdaBins layout and lists:
``/<scene>/rgb_00045.jpg /<scene>/sync_depth_00045.png 518.8579`` for training (relative to
``<root>/sync/``) and ``<category>/rgb_00045.jpg <category>/sync_depth_00045.png 518.8579`` for the
official test split (relative to ``<root>/official_splits/test/``); depth PNGs are uint16
millimetres, 0 = invalid. ``make_dataset`` picks the class from ``data.dataset``.

Augmentation randomness comes from a generator seeded by (seed, epoch, index), so a sample is the
same whichever worker loads it and a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from space_clip_ros.errors import InputError
from space_clip_ros.io.depth_files import NYU_DEPTH_SCALE, read_png16
from training.config import DataConfig

LOG = logging.getLogger(__name__)
DATE_RE = re.compile(r"^\d{4}_\d{2}_\d{2}$")
MAX_LISTED = 10
NYU_TRAIN_DIR = "sync"  # BTS/AdaBins: the training scenes (lines with a leading '/')
NYU_TEST_DIR = "official_splits/test"  # the 654 official test images


class DatasetError(InputError):
    """A file list or data file is missing or unreadable; the message names the paths."""


@dataclass(frozen=True)
class Sample:
    image: Path
    depth: Optional[Path]
    focal: float


def _list_entries(list_path: Path, fix: str) -> Iterator[tuple[str, str, float]]:
    """(image, depth or "None", focal) per line of a BTS/AdaBins list; errors name the line."""
    if not list_path.is_file():
        raise DatasetError("file list not found", source=list_path, fix=fix)
    for line_no, line in enumerate(list_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DatasetError(
                f"{list_path}:{line_no}: expected '<image> <depth|None> <focal>', got {line!r}."
            )
        yield parts[0], parts[1], float(parts[2])


def read_filelist(list_path: Path, root: Path) -> list[Sample]:
    """Parse a BTS/AdaBins list and resolve its entries against the KITTI tree under root."""
    samples = []
    fix = "run training/prepare_kitti.py or set data.train_list/val_list."
    for image_rel, depth_rel, focal in _list_entries(list_path, fix):
        first = Path(image_rel).parts[0]
        if not DATE_RE.match(first):  # old BTS lists: drive folder without its date parent
            image_rel = f"{first[:10]}/{image_rel}"
        depth = None if depth_rel == "None" else _resolve_depth(root, depth_rel)
        samples.append(Sample(root / "raw" / image_rel, depth, focal))
    return samples


def _resolve_depth(root: Path, rel: str) -> Path:
    for split in ("train", "val"):
        candidate = root / "annotated" / split / rel
        if candidate.exists():
            return candidate
    return root / "annotated" / "train" / rel  # reported as missing by the existence check


def read_nyu_filelist(list_path: Path, root: Path) -> list[Sample]:
    """A BTS/AdaBins NYU list; entries resolve under root/sync/ or root/official_splits/test/."""
    samples = []
    fix = (
        "copy the BTS lists nyudepthv2_{train,test}_files_with_gt.txt into <root>/splits/ "
        "(training/README.md, NYU Depth v2) or set data.train_list/val_list."
    )
    for image_rel, depth_rel, focal in _list_entries(list_path, fix):
        base = _nyu_base(root, image_rel)
        depth = None if depth_rel == "None" else base / depth_rel.lstrip("/")
        samples.append(Sample(base / image_rel.lstrip("/"), depth, focal))
    return samples


def _nyu_base(root: Path, image_rel: str) -> Path:
    """Training lines start with '/' (sync/), test lines do not (official_splits/test/).

    The other folder is the fallback.
    """
    order = (
        (NYU_TRAIN_DIR, NYU_TEST_DIR)
        if image_rel.startswith("/")
        else (NYU_TEST_DIR, NYU_TRAIN_DIR)
    )
    for folder in order:
        if (root / folder / image_rel.lstrip("/")).exists():
            return root / folder
    return root / order[0]  # reported as missing by the existence check


def load_image(path: Path) -> np.ndarray:
    """float32 RGB in [0, 1], HxWx3."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def kb_crop_box(height: int, width: int, kb: tuple[int, int], path: Path) -> tuple[int, int]:
    """(top, left) of the KITTI-benchmark crop: the bottom rows, centred horizontally."""
    kh, kw = kb
    if height < kh or width < kw:
        raise DatasetError(
            f"image {height}x{width} is smaller than the KB crop {kh}x{kw}",
            source=path,
            fix="set data.kb_crop",
        )
    return height - kh, (width - kw) // 2


def augment(
    image: np.ndarray,
    depth: np.ndarray,
    cfg: DataConfig,
    rng: np.random.Generator,
    anchor: tuple[float, float] = (0.5, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation, random crop (or zoom_crop with data.focal_scale, keeping the principal point at
    `anchor`), flip and photometric jitter, as in BTS/AdaBins and the paper."""
    if cfg.rotate_deg > 0:
        angle = float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
        image = _rotate_float(image, angle, Image.BILINEAR)
        depth = _rotate_float(depth[..., None], angle, Image.NEAREST)[..., 0]
    if tuple(cfg.focal_scale) != (1.0, 1.0):
        image, depth = zoom_crop(image, depth, cfg.crop_size, cfg.focal_scale, rng, anchor)
    else:
        ch, cw = cfg.crop_size
        h, w = depth.shape
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image = image[top : top + ch, left : left + cw]
        depth = depth[top : top + ch, left : left + cw]
    if cfg.hflip and rng.random() < 0.5:
        image, depth = image[:, ::-1], depth[:, ::-1]
    if rng.random() < cfg.color_prob:
        lo, hi = cfg.color_range
        gamma, brightness = rng.uniform(lo, hi), rng.uniform(lo, hi)
        colours = rng.uniform(lo, hi, size=3).astype(np.float32)
        image = np.clip(image**gamma * brightness * colours, 0.0, 1.0)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(
        depth, dtype=np.float32
    )


def zoom_crop(
    image: np.ndarray,
    depth: np.ndarray,
    crop_size: tuple[int, int],
    scale_range: tuple[float, float],
    rng: np.random.Generator,
    anchor: tuple[float, float] = (0.5, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """A crop_size crop of the camera with s times the data's focal length, s log-uniform in
    scale_range, depth in the recorded camera's metres (divided by s).

    A camera with s times the focal length sees a 1/s-size window of the frame at crop_size;
    the decoder, told to read it as the recorded camera, must answer depth / s, which is what
    inference multiplies back by its view's depth_scale (space_clip_ros/model/canonical_camera).
    The window is placed as inference places an image (`_zoom_offset`): the principal point at
    `anchor` (height, width fractions of a crop: where the training camera has it), moved by
    the spread plain random crops give it. A window larger than the frame (s < 1) is padded as
    inference pads (the edge pixels repeated, PAD_MODE) with depth 0 (no ground truth).
    """
    s = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    (ch, cw), (h, w) = crop_size, depth.shape
    wh, ww = max(round(ch / s), 1), max(round(cw / s), 1)
    top = _zoom_offset(h, ch, wh, anchor[0], rng)
    left = _zoom_offset(w, cw, ww, anchor[1], rng)
    image = _window(image, top, left, wh, ww, mode="edge")  # numpy's name for "replicate"
    depth = _window(depth, top, left, wh, ww, mode="constant")
    shrink = cv2.INTER_AREA if wh > ch else cv2.INTER_LINEAR
    image = cv2.resize(image, (cw, ch), interpolation=shrink)
    depth = cv2.resize(depth, (cw, ch), interpolation=cv2.INTER_NEAREST)
    # the window's exact scale per axis after rounding; their geometric mean, as inference does
    return image, depth / np.float32(np.sqrt((ch / wh) * (cw / ww)))


def _zoom_offset(
    size: int, crop: int, window: int, anchor: float, rng: np.random.Generator
) -> int:
    """Where a `window`-pixel window starts on a frame axis of `size` pixels whose plain crops
    are `crop` pixels.

    The plain random crops start anywhere in [0, size - crop]: centred at c = (size - crop) / 2,
    the principal point at `anchor` of the crop, give or take c. A window of another size keeps
    the principal point at `anchor` of it and the same spread relative to its size, so at
    s = 1 this draws from the plain random crop's range, and a window larger than the frame
    holds the frame where canonical_view puts an image of a wider camera (KITTI's rows: exactly
    there, as the KB crop and the training crops share them). A uniform place would put the
    horizon anywhere in the padded window, which inference never does.
    """
    centred = (size - crop) / 2.0
    spread = abs(centred) * window / crop
    return round(centred - anchor * (window - crop) + rng.uniform(-spread, spread))


def _window(array: np.ndarray, top: int, left: int, height: int, width: int, mode: str):
    """array[top:top+height, left:left+width], padded by np.pad's mode where it leaves the
    array (constant: zeros)."""
    h, w = array.shape[:2]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + height, h), min(left + width, w)
    margins = [(y0 - top, top + height - y1), (x0 - left, left + width - x1)]
    margins += [(0, 0)] * (array.ndim - 2)
    return np.pad(array[y0:y1, x0:x1], margins, mode=mode).astype(np.float32, copy=False)


def _rotate_float(array: np.ndarray, angle: float, resample: int) -> np.ndarray:
    """Rotate each channel of a float HxWxC array about its centre (PIL mode 'F')."""
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c])).rotate(angle, resample))
        for c in range(array.shape[-1])
    ]
    return np.stack(channels, axis=-1)


class DepthDataset(Dataset):
    """A listed dataset with strict/lenient handling of missing and unreadable files.

    Items are dicts. train: image (3,h,w) float [0,1], depth (1,h,w) metres, mask (1,h,w) bool.
    eval: image (3,kh,kw), gt (H,W) at native resolution, box (top, left) of the image in gt.
    Subclasses give the list reader, the hint for missing files and ``_load``.
    """

    FIX_MISSING = "check data.root"

    @staticmethod
    def read_list(list_path: Path, root: Path) -> list[Sample]:
        raise NotImplementedError

    def __init__(
        self, cfg: DataConfig, list_path: Path, train: bool, seed: int = 0, max_samples: int = 0
    ):
        self.cfg, self.train, self.seed, self.epoch = cfg, train, seed, 0
        # where the training camera's principal point sits in a crop (height, width fractions),
        # which data.focal_scale's zoom keeps: the trainer sets it from the camera record
        self.anchor: tuple[float, float] = (0.5, 0.5)
        root = Path(cfg.root)
        samples = self.read_list(list_path if list_path.is_absolute() else root / list_path, root)
        self.no_gt = sum(s.depth is None for s in samples)  # the split's known gaps, not errors
        samples = [s for s in samples if s.depth is not None]
        missing = [str(p) for s in samples for p in (s.image, s.depth) if not p.exists()]
        if missing:
            listed = "\n  ".join(missing[:MAX_LISTED]) + (
                f"\n  ... and {len(missing) - MAX_LISTED} more"
                if len(missing) > MAX_LISTED
                else ""
            )
            message = f"{len(missing)} file(s) from {list_path} are missing:\n  {listed}"
            if cfg.strict:
                raise DatasetError(
                    message, fix=f"{self.FIX_MISSING}, or set data.strict=false to skip them"
                )
            LOG.warning("%s\nskipping them (data.strict=false)", message)
            gone = set(missing)
            samples = [s for s in samples if str(s.image) not in gone and str(s.depth) not in gone]
        self.skipped: list[str] = missing
        self.samples = samples[:max_samples] if max_samples > 0 else samples
        if not self.samples:
            raise DatasetError(
                f"no usable samples under {root}",
                source=list_path,
                fix="check data.root and the list",
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        """item: an index, or (epoch, index) from the trainer's sampler, which persistent workers
        (their own copy of the dataset, never told of set_epoch) need to seed the augmentation."""
        if isinstance(item, tuple):
            self.epoch, index = item
        else:
            index = item
        for attempt in range(len(self.samples)):
            sample = self.samples[(index + attempt) % len(self.samples)]
            try:
                return self._load(sample, index)
            except (OSError, UnidentifiedImageError, ValueError, DatasetError) as exc:
                message = f"cannot read sample {sample.image} / {sample.depth}: {exc}"
                if self.cfg.strict:
                    raise DatasetError(
                        message, fix="re-extract the file, or set data.strict=false to skip it"
                    ) from exc
                self.skipped.append(str(sample.image))
                LOG.warning("%s; skipped (%d so far in this worker)", message, len(self.skipped))
        raise DatasetError(
            f"no readable sample in {len(self.samples)} entries; see the warnings above."
        )

    def _load(self, sample: Sample, index: int) -> dict:
        raise NotImplementedError

    def _train_item(self, image: np.ndarray, depth: np.ndarray, index: int) -> dict:
        """Augment (randomness from (seed, epoch, index)) and mask the depth range."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, depth = augment(image, depth, self.cfg, rng, self.anchor)
        depth_t = torch.from_numpy(depth)[None]
        mask = (depth_t > self.cfg.min_depth) & (depth_t < self.cfg.max_depth)
        return {"image": _chw(image), "depth": depth_t, "mask": mask}


class KittiDepth(DepthDataset):
    """KITTI Eigen split. Training: KB crop, then augmented crops. Eval: KB crop, full GT."""

    FIX_MISSING = "run training/prepare_kitti.py"
    read_list = staticmethod(read_filelist)

    def _load(self, sample: Sample, index: int) -> dict:
        image, depth = load_image(sample.image), read_png16(sample.depth)
        if image.shape[:2] != depth.shape:
            raise DatasetError(
                f"{sample.image} is {image.shape[:2]} but {sample.depth} is {depth.shape}"
            )
        top, left = kb_crop_box(*depth.shape, self.cfg.kb_crop, sample.image)
        kh, kw = self.cfg.kb_crop
        if not self.train:
            return {
                "image": _chw(image[top : top + kh, left : left + kw]),
                "gt": torch.from_numpy(depth),
                "box": torch.tensor([top, left]),
            }
        image, depth = (
            image[top : top + kh, left : left + kw],
            depth[top : top + kh, left : left + kw],
        )
        return self._train_item(image, depth, index)


class NyuDepth(DepthDataset):
    """NYU Depth v2, BTS/AdaBins format (depth PNG / 1000 = metres, 0 = invalid).

    Training: the valid box (data.nyu_valid_box, dropping the blank registration border), then the
    shared augmentations (rotation, random crop, flip, colour). Eval: the full image and its full
    GT (box (0, 0)); evaluate.py applies the Eigen NYU crop ("nyu") to the metrics.
    """

    FIX_MISSING = (
        "copy the BTS-format sync/ and official_splits/test/ folders under data.root "
        "(training/README.md, NYU Depth v2)"
    )
    read_list = staticmethod(read_nyu_filelist)

    def _load(self, sample: Sample, index: int) -> dict:
        image, depth = load_image(sample.image), read_png16(sample.depth, NYU_DEPTH_SCALE)
        if image.shape[:2] != depth.shape:
            raise DatasetError(
                f"{sample.image} is {image.shape[:2]} but {sample.depth} is {depth.shape}"
            )
        if not self.train:
            return {
                "image": _chw(image),
                "gt": torch.from_numpy(depth),
                "box": torch.tensor([0, 0]),
            }
        top, bottom, left, right = self.cfg.nyu_valid_box
        if depth.shape[0] < bottom or depth.shape[1] < right:
            raise DatasetError(
                f"image {depth.shape[0]}x{depth.shape[1]} is smaller than data.nyu_valid_box "
                f"{list(self.cfg.nyu_valid_box)}",
                source=sample.image,
                fix="NYU frames are 480x640; check the file or set data.nyu_valid_box",
            )
        return self._train_item(
            image[top:bottom, left:right], depth[top:bottom, left:right], index
        )


DATASET_CLASSES: dict[str, type[DepthDataset]] = {"kitti": KittiDepth, "nyu": NyuDepth}


def make_dataset(
    cfg: DataConfig, list_path: Path, train: bool, seed: int = 0, max_samples: int = 0
) -> DepthDataset:
    """The dataset class named by data.dataset (kitti | nyu)."""
    if cfg.dataset not in DATASET_CLASSES:
        raise DatasetError(
            f"is {cfg.dataset!r}",
            field="data.dataset",
            fix=f"use one of {', '.join(DATASET_CLASSES)}",
        )
    return DATASET_CLASSES[cfg.dataset](cfg, list_path, train, seed, max_samples)


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def collate_eval(items: list[dict]) -> dict:
    """Stack the equal-size eval images (KB crops, NYU frames); ground truths stay a list.

    Their native sizes differ by drive.
    """
    return {
        "image": torch.stack([i["image"] for i in items]),
        "gt": [i["gt"] for i in items],
        "box": torch.stack([i["box"] for i in items]),
    }
