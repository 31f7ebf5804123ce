"""Typed training configuration: YAML file -> dataclasses, with ``--set a.b=value`` overrides.

Parsing reuses the model config's strict reader, so a misspelt key in a training recipe is an
error naming the file and the field, not a silently ignored option.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from space_clip_ros.errors import quote
from space_clip_ros.metrics import BOUNDARY_RULES, BoundaryRule
from space_clip_ros.model.config import (
    ConfigError,
    SpaceClipConfig,
    build_dataclass,
    read_yaml_file,
    to_plain,
    validate,
)
from space_clip_ros.runtime_choices import PRECISION_CHOICES

DATASETS = ("kitti", "nyu")
# standard: KB-crop input, metrics at native GT resolution (BTS/AdaBins); reference: the
# SPACE-CLIP release's full frame at 352x704 (training/evaluate.py has both).
PROTOCOLS = ("standard", "reference")


@dataclass
class DataConfig:
    # kitti: Eigen split, data_depth_annotated (configs/kitti.yaml); nyu: NYU Depth v2 in the
    # BTS/AdaBins format (configs/nyu.yaml). The fields below default to the KITTI recipe.
    dataset: str = "kitti"
    root: str = "data/kitti"
    # BTS/AdaBins-format lists; relative paths are relative to root. train and val are the
    # Eigen training list split by drive (training/splits.py, written by prepare_kitti); the
    # trainer selects its best checkpoint on val and never reads test, which only
    # training.evaluate reads, once, at the end (training/README.md, "Numbers and protocols").
    train_list: str = "splits/kitti_eigen_train_minus_val.txt"
    val_list: str = "splits/kitti_eigen_val.txt"
    test_list: str = "splits/kitti_eigen_test_files_with_gt.txt"
    strict: bool = True  # False: missing/corrupt files are counted, logged and skipped
    crop_size: tuple[int, int] = (352, 704)  # random training crop (height, width)
    kb_crop: tuple[int, int] = (352, 1216)  # KITTI benchmark crop (bottom-centre), train and eval
    # NYU only: rows top:bottom, columns left:right of the 480x640 frame kept before the training
    # augmentations (the BTS/AdaBins loaders drop the blank registration border); eval uses the
    # full frame.
    nyu_valid_box: tuple[int, int, int, int] = (45, 472, 43, 608)
    rotate_deg: float = 1.0
    # Random focal scale s, log-uniform in [low, high]: the crop shows a camera with s times the
    # focal length (a 1/s-size window, padded past the image when s < 1) and the depth is
    # divided by s, so the decoder keeps learning the recorded camera (training/README.md,
    # "Camera"). [1, 1]: off, the paper's recipe.
    focal_scale: tuple[float, float] = (1.0, 1.0)
    # The dataset frames' camera [fx, fy, cx, cy, width, height], recorded in the checkpoint
    # (model.camera) with the crops; null: KITTI 2011_09_26 or NYU's Kinect calibration
    # (canonical_camera), scaled to the size of the first training frame.
    intrinsics: Optional[list[float]] = None
    hflip: bool = True
    color_range: tuple[float, float] = (0.9, 1.1)  # gamma, brightness and per-channel factors
    color_prob: float = 0.5
    min_depth: float = 1e-3
    max_depth: float = 80.0
    num_workers: int = 8
    val_max_samples: int = 0  # 0 = the whole validation list


@dataclass
class OptimConfig:
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 64  # global batch, split evenly over the DDP ranks
    epochs: int = 20
    warmup_frac: float = 0.05
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    max_steps: int = 0  # stop after this many steps (smoke runs); 0 = epochs * steps_per_epoch


@dataclass
class LossConfig:
    silog_weight: float = 0.5
    ssim_weight: float = 0.5
    # One weight per decoder aux head (model.decoder.aux_heads), deepest stage first.
    aux_weights: list[float] = field(default_factory=lambda: [0.10, 0.05, 0.0])
    variance_focus: float = 0.85
    # false: the paper's SSIM (pixels without ground truth count as 0 in each window); true:
    # window statistics over valid pixels only (training/README.md, "SSIM term").
    ssim_masked: bool = False


@dataclass
class EvalConfig:
    # Which protocol validation (and so the best checkpoint) uses; PROTOCOLS.
    protocol: str = "standard"
    crop: str = "eigen"  # eigen | garg (KITTI) | nyu (NYU Depth v2) | none
    flip_tta: bool = False  # during training; evaluate.py --flip-tta for the final numbers
    every_epochs: int = 1
    select: str = "abs_rel"  # metric for the best checkpoint (lower is better)
    # Boundary / interior metrics (space_clip_ros.metrics.boundary_masks): dense for NYU's Kinect
    # depth (the authors' rule), sparse for KITTI's LiDAR-based annotated depth; auto picks by
    # data.dataset.
    boundary_rule: str = "auto"


@dataclass
class RunConfig:
    out_dir: str = "runs/kitti"
    seed: int = 42
    precision: str = (
        "auto"  # auto (bf16 on GPUs that have it, else fp16; fp32 on CPU) | fp32 | bf16 | fp16
    )
    ema_decay: float = 0.996  # 0 disables the EMA
    log_every: int = 20
    image_every: int = 500
    # End this invocation after N more steps, leaving a resumable state (time-limited cluster
    # jobs); unlike optim.max_steps it does not change the schedule. 0 = run to the end.
    stop_after: int = 0
    resume: Optional[str] = (
        None  # a state_*.pt written by this trainer, or "auto" (out_dir/state_last.pt)
    )
    tqdm: bool = True


@dataclass
class TrainConfig:
    model: SpaceClipConfig = field(default_factory=SpaceClipConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(asdict(self))


def boundary_rule(cfg: TrainConfig) -> BoundaryRule:
    """eval.boundary_rule with 'auto' resolved: dense for NYU, sparse for KITTI's LiDAR truth."""
    if cfg.eval.boundary_rule != "auto":
        return cfg.eval.boundary_rule
    return "dense" if cfg.data.dataset == "nyu" else "sparse"


def apply_override(data: dict, assignment: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (numbers, lists, null)."""
    if "=" not in assignment:
        raise ConfigError(
            f"{assignment!r}: expected key=value", field="--set", fix="e.g. --set optim.lr=3e-4"
        )
    key, raw = assignment.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(
                f"{assignment!r}: '{part}' is not a section",
                field="--set",
                fix="check the key path",
            )
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:  # YAML 1.1 reads '3e-4' (no dot) as a string; on a command line it means a number
            value = float(value)
        except ValueError:
            pass
    node[parts[-1]] = value


def read_recipe(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A recipe's plain data, with `base: other.yaml` (relative to the file) merged under it.

    An arm of a comparison (the semantic-only control) is its base recipe plus the fields that
    differ, so the two cannot drift apart the way two copied files would.
    """
    # the same guarded reader as a checkpoint's config.yaml: size cap, UTF-8, no aliases
    data = read_yaml_file(path, "a training config, e.g. training/configs/kitti.yaml")
    if not isinstance(data, dict) or "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str) or not base:
        raise ConfigError(
            f"is {quote(base, 80)}", source=path, field="base", fix="name a recipe file"
        )
    base_path = (path.parent / base).resolve()
    if base_path in chain or base_path == path.resolve():
        raise ConfigError(
            "recipes name each other as base", source=path, field="base", fix="break the cycle"
        )
    return _merged(read_recipe(base_path, (*chain, path.resolve())), data)


def _merged(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        both_sections = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_sections else value
    return merged


def load_train_config(path: Optional[Union[str, Path]], overrides: list[str] = ()) -> TrainConfig:
    data: dict = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = read_recipe(Path(path))
    for assignment in overrides:
        apply_override(data, assignment)
    cfg = build_dataclass(TrainConfig, data, source, "")
    validate(cfg.model, f"{source} (model)")
    _validate(cfg, source)
    return cfg


def _same_list(a: str, b: str, root: str) -> bool:
    """Whether two list fields name one file (relative names are under data.root); no I/O."""

    def where(name: str) -> str:
        path = Path(name).expanduser()
        return os.path.normpath(path if path.is_absolute() else Path(root) / path)

    return where(a) == where(b)


def _validate(cfg: TrainConfig, source: str) -> None:
    def bad(name: str, why: str, fix: str) -> ConfigError:
        return ConfigError(f"field '{name}' {why}", source=source, fix=fix)

    if cfg.data.dataset not in DATASETS:
        raise bad("data.dataset", f"is {cfg.data.dataset!r}", "use " + " or ".join(DATASETS))
    if cfg.data.val_list and _same_list(cfg.data.val_list, cfg.data.test_list, cfg.data.root):
        # Selecting the checkpoint on the test split makes the test number optimistic: the
        # mistake the SPACE-CLIP authors corrected in their own release.
        raise bad(
            "data.val_list",
            f"is the test list (data.test_list {cfg.data.test_list!r})",
            "select on a validation list held out from the training data: python -m "
            "training.splits kitti|nyu --root DATA writes one (training/README.md)",
        )
    if cfg.eval.crop not in ("eigen", "garg", "nyu", "none"):
        raise bad("eval.crop", f"is {cfg.eval.crop!r}", "use eigen, garg, nyu or none")
    if cfg.eval.boundary_rule not in ("auto", *BOUNDARY_RULES):
        raise bad(
            "eval.boundary_rule",
            f"is {cfg.eval.boundary_rule!r}",
            "use auto, " + " or ".join(BOUNDARY_RULES),
        )
    if cfg.eval.protocol not in PROTOCOLS:
        raise bad("eval.protocol", f"is {cfg.eval.protocol!r}", "use " + " or ".join(PROTOCOLS))
    if cfg.eval.protocol == "reference" and cfg.data.dataset != "kitti":
        raise bad(
            "eval.protocol",
            f"is 'reference' (the release's KITTI evaluation) for {cfg.data.dataset}",
            "use standard",
        )
    if cfg.run.precision not in PRECISION_CHOICES:
        fix = "use " + ", ".join(PRECISION_CHOICES)
        raise bad("run.precision", f"is {cfg.run.precision!r}", fix)
    heads = cfg.model.decoder.aux_heads
    if len(cfg.loss.aux_weights) != heads:
        # One term per head, zero weights included: a head without a term gets no gradient,
        # and DistributedDataParallel then fails on the unused parameters.
        raise bad(
            "loss.aux_weights",
            f"has {len(cfg.loss.aux_weights)} weights but model.decoder.aux_heads is {heads}",
            f"give exactly {heads} weight(s), one per aux head (0.0 to switch a head's term off)",
        )
    if cfg.optim.batch_size <= 0 or cfg.optim.epochs <= 0:
        raise bad("optim.batch_size/epochs", "is not positive", "use positive integers")
    if not 0.0 <= cfg.optim.warmup_frac < 1.0:
        raise bad("optim.warmup_frac", f"is {cfg.optim.warmup_frac}", "use a fraction in [0, 1)")
    if not 0.0 <= cfg.run.ema_decay < 1.0:
        raise bad(
            "run.ema_decay", f"is {cfg.run.ema_decay}", "use a decay in [0, 1); 0 disables the EMA"
        )
    lo, hi = cfg.data.focal_scale if len(cfg.data.focal_scale) == 2 else (0.0, 0.0)
    if not 0.0 < lo <= hi:
        raise bad(
            "data.focal_scale",
            f"is {list(cfg.data.focal_scale)}",
            "give [low, high] with 0 < low <= high; [1, 1] switches it off",
        )
    k = cfg.data.intrinsics
    if k is not None and not (
        len(k) == 6 and min(k[0], k[1], k[4], k[5]) > 0 and k[4] == int(k[4]) and k[5] == int(k[5])
    ):
        raise bad(
            "data.intrinsics",
            f"is {k}",
            "give [fx, fy, cx, cy, width, height] of the dataset's frames in pixels, or null",
        )
    if cfg.data.dataset == "kitti" and any(
        c > k for c, k in zip(cfg.data.crop_size, cfg.data.kb_crop)
    ):
        raise bad(
            "data.crop_size",
            f"{list(cfg.data.crop_size)} exceeds data.kb_crop {list(cfg.data.kb_crop)}",
            "crop inside the KB crop",
        )
    if cfg.data.dataset == "nyu":
        box = tuple(cfg.data.nyu_valid_box) + (0,) * (4 - len(cfg.data.nyu_valid_box))
        top, bottom, left, right = box[:4]
        if len(cfg.data.nyu_valid_box) != 4 or not (0 <= top < bottom and 0 <= left < right):
            raise bad(
                "data.nyu_valid_box",
                f"is {list(cfg.data.nyu_valid_box)}",
                "give [top, bottom, left, right] with top < bottom, left < right",
            )
        if cfg.data.crop_size[0] > bottom - top or cfg.data.crop_size[1] > right - left:
            raise bad(
                "data.crop_size",
                f"{list(cfg.data.crop_size)} exceeds data.nyu_valid_box "
                f"{list(cfg.data.nyu_valid_box)} ({bottom - top}x{right - left})",
                "crop inside the valid box, e.g. [416, 544]",
            )
