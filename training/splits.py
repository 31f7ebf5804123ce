"""Validation lists held out from the training data by KITTI drive or NYU scene, from a seed.

    python -m training.splits kitti --root data/kitti   # prepare_kitti runs this itself
    python -m training.splits nyu --root data/nyu

The trainer selects its best checkpoint on the validation list; the test list is evaluated once,
at the end, by training.evaluate. Frames of one drive (or one room) are near-duplicates, so the
hold-out takes whole groups: no group is on both sides, and a validation number says how the
model does on places it has not seen, as the test number does.

The draw is the SPACE-CLIP authors' (docs/reproducibility.md of taewan2002/SPACE-CLIP; their
results/nyu_layer_study/split_manifest.json records its outcome): the groups of the training
list, sorted, shuffled by Python's ``random.Random(seed)``, and the first round(10 %) of them (at
least one, never all) held out; seed 20260926. Groups:

- NYU: the scene folder with one trailing lower-case letter removed (kitchen_0028a and
  kitchen_0028b are one room). With the BTS/AdaBins training list (24,231 frames) this gives the
  authors' 21,974 / 2,257 images across 224 / 25 groups; when the list is byte-identical to theirs
  (its SHA-256 is in their manifest) the written lists must match theirs byte for byte, and a
  mismatch is an error. NYU's official test paths name categories, not scenes, so overlap with
  the 654 test images cannot be checked (the authors say the same).
- KITTI: the drive (2011_09_26_drive_0001). The Eigen split keeps training and test drives apart;
  this tool checks it against the test list and refuses lists that share a drive.

Outputs beside the source list, written atomically: ``<prefix>_train_minus_val.txt`` (train on
it), ``<prefix>_val.txt`` (select on it) and ``<prefix>_val.json`` (seed, fraction, groups,
counts, SHA-256 of every list; for NYU whether it is the authors' split).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from space_clip_ros.errors import ConfigError, InputError, RuntimeFailure, quote, run_tool
from space_clip_ros.io.atomic import atomic_path

PROG = "python -m training.splits"
LOG = logging.getLogger("splits")

SPLIT_SEED = 20260926  # the authors' seed for their NYU scene hold-out
VAL_FRACTION = 0.1
DRIVE_RE = re.compile(r"(\d{4}_\d{2}_\d{2})_drive_(\d{4})_sync")

# The authors' NYU split (results/nyu_layer_study/split_manifest.json of taewan2002/SPACE-CLIP):
# the source list's SHA-256 and what the draw must give for it.
AUTHORS_NYU = {
    "source_sha256": "66e2beb718a58c5c946c169f6e70cc6ae166ddd19f5618266fff52ff7443e0e9",
    "train_sha256": "303748b4056dbcbdab7dafe8a7ec26eb3677fb8cbcbc4f75030b0c523e16dd1d",
    "val_sha256": "dc7f0e200061fd827a9f17e0130c843d7787b2353c0931e2fa21c476452bca56",
    "images": (21_974, 2_257),
    "groups": (224, 25),
}


def kitti_drive(line: str) -> str:
    """'2011_09_26_drive_0001' from a KITTI list line (its image path)."""
    match = DRIVE_RE.search(line.split()[0])
    if not match:
        raise InputError(
            f"no KITTI drive name in {quote(line.split()[0], 120)}",
            fix="use a BTS/AdaBins Eigen split list (prepare_kitti downloads them)",
        )
    return f"{match.group(1)}_drive_{match.group(2)}"


def nyu_scene_group(line: str) -> str:
    """'kitchen_0028' from '/kitchen_0028b/rgb_00045.jpg ...': the scene, one trailing letter off.

    NYU records one room in several sessions (a, b, c...), which must stay together.
    """
    scene = line.split()[0].lstrip("/").split("/")[0]
    return re.sub(r"[a-z]$", "", scene)


def held_out_groups(groups: Iterable[str], seed: int, fraction: float) -> set[str]:
    """The groups drawn for validation: sorted, shuffled with random.Random(seed), the first
    round(fraction * n), at least one and never all (the authors' draw)."""
    ordered = sorted(set(groups))
    if len(ordered) < 2:
        raise InputError(
            f"the training list has {len(ordered)} group(s); a hold-out needs at least 2",
            fix="use the full training list",
        )
    random.Random(seed).shuffle(ordered)
    count = min(len(ordered) - 1, max(1, round(len(ordered) * fraction)))
    return set(ordered[:count])


@dataclass(frozen=True)
class SplitSpec:
    """One dataset's lists (relative to its root) and what groups its frames."""

    dataset: str
    source: str  # the training list the hold-out is drawn from
    test_list: str  # the test split (data.test_list)
    check_test: bool  # whether test paths name groups, so shared ones can be refused
    prefix: str  # outputs: splits/<prefix>_train_minus_val.txt, _val.txt, _val.json
    group: Callable[[str], str]
    grouping: str

    def outputs(self, root: Path) -> tuple[Path, Path, Path]:
        base = root / "splits" / self.prefix
        return (
            base.with_name(f"{self.prefix}_train_minus_val.txt"),
            base.with_name(f"{self.prefix}_val.txt"),
            base.with_name(f"{self.prefix}_val.json"),
        )


SPECS = {
    "kitti": SplitSpec(
        "kitti",
        "splits/kitti_eigen_train_files_with_gt.txt",
        "splits/kitti_eigen_test_files_with_gt.txt",
        True,
        "kitti_eigen",
        kitti_drive,
        "KITTI drive (date + drive number)",
    ),
    "nyu": SplitSpec(
        "nyu",
        "splits/nyudepthv2_train_files_with_gt.txt",
        "splits/nyudepthv2_test_files_with_gt.txt",
        False,
        "nyudepthv2",
        nyu_scene_group,
        "scene directory with trailing letter stripped",
    ),
}


@dataclass(frozen=True)
class Split:
    train: list[str]
    val: list[str]
    train_groups: list[str]
    val_groups: list[str]


def split_lines(
    lines: Sequence[str], group: Callable[[str], str], seed: int, fraction: float
) -> Split:
    """(train, val) lines, each in the source order, whole groups on one side only."""
    held = held_out_groups((group(line) for line in lines), seed, fraction)
    train = [line for line in lines if group(line) not in held]
    val = [line for line in lines if group(line) in held]
    kept = sorted({group(line) for line in train})
    return Split(train, val, kept, sorted(held))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _list_lines(path: Path, what: str) -> list[str]:
    """Stripped non-empty lines, as listed (a repeated frame is kept, with a warning: both copies
    are in one group, so the split stays clean; the list's weighting is the list's)."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise InputError(
            f"cannot read the {what} ({exc.strerror or exc})",
            source=path,
            fix="run training/prepare_kitti.py (KITTI) or copy the BTS/AdaBins lists into "
            "<root>/splits/ (NYU; training/README.md)",
        ) from exc
    repeated = len(lines) - len({line.split()[0] for line in lines})
    if repeated:
        LOG.warning("%s: %d image(s) listed more than once; kept as listed", path, repeated)
    return lines


def _payload(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def make_split(
    spec: SplitSpec,
    root: Path,
    seed: int = SPLIT_SEED,
    fraction: float = VAL_FRACTION,
    source: Optional[Path] = None,
) -> dict:
    """Write the train-minus-val and val lists and the manifest under root/splits; return it."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"is {fraction}", field="--fraction", fix="use a fraction in (0, 1)")
    root = Path(root)
    source = Path(source) if source else root / spec.source
    lines = _list_lines(source, f"{spec.dataset} training list")
    split = split_lines(lines, spec.group, seed, fraction)
    if spec.check_test:
        test_lines = _list_lines(root / spec.test_list, "test list")
        test_groups = {spec.group(line) for line in test_lines}
        shared = sorted(test_groups & (set(split.train_groups) | set(split.val_groups)))
        if shared:
            raise InputError(
                f"the training list shares {len(shared)} group(s) with {spec.test_list}: "
                f"{', '.join(shared[:5])}",
                source=source,
                fix="use the Eigen split's training list, whose drives are not in its test list",
            )
    payloads = {"train": _payload(split.train), "val": _payload(split.val)}
    manifest = {
        "dataset": spec.dataset,
        "seed": seed,
        "fraction": fraction,
        "grouping": spec.grouping,
        "source": str(source),
        "source_sha256": _digest(source.read_bytes()),
        "counts": {"train": len(split.train), "val": len(split.val)},
        "groups": {"train": split.train_groups, "val": split.val_groups},
        "sha256": {name: _digest(data) for name, data in payloads.items()},
    }
    if spec.dataset == "nyu":
        manifest["authors_split"] = _compare_with_authors(manifest, seed, fraction)
    train_path, val_path, manifest_path = spec.outputs(root)
    for path, data in ((train_path, payloads["train"]), (val_path, payloads["val"])):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    LOG.info(
        "%s: %d train / %d val images in %d / %d groups (seed %d); wrote %s, %s",
        spec.dataset,
        len(split.train),
        len(split.val),
        len(split.train_groups),
        len(split.val_groups),
        seed,
        train_path,
        val_path,
    )
    return manifest


def _compare_with_authors(manifest: dict, seed: int, fraction: float) -> bool:
    """True when this is the authors' split; an error when it should be and is not."""
    same_input = (
        manifest["source_sha256"] == AUTHORS_NYU["source_sha256"]
        and seed == SPLIT_SEED
        and fraction == VAL_FRACTION
    )
    if not same_input:
        LOG.info(
            "nyu: the source list or the seed differs from the SPACE-CLIP authors' (their list's "
            "SHA-256 is %s...): the same rule, not their split",
            AUTHORS_NYU["source_sha256"][:12],
        )
        return False
    ours = (manifest["sha256"]["train"], manifest["sha256"]["val"])
    if ours != (AUTHORS_NYU["train_sha256"], AUTHORS_NYU["val_sha256"]):
        raise RuntimeFailure(
            "nyu: the authors' source list and seed gave lists that differ from theirs "
            f"(train {ours[0][:12]}..., val {ours[1][:12]}...)",
            fix="this is a bug in training/splits.py: report it with the manifest",
        )
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Hold out a validation list from a training list by drive (KITTI) or scene "
        "(NYU), reproducibly from a seed.",
    )
    parser.add_argument("dataset", choices=sorted(SPECS))
    parser.add_argument("--root", type=Path, required=True, help="the dataset root (data.root)")
    parser.add_argument("--seed", type=int, default=SPLIT_SEED, help=f"default {SPLIT_SEED}")
    parser.add_argument(
        "--fraction", type=float, default=VAL_FRACTION, help="share of groups held out (0.1)"
    )
    parser.add_argument("--source", type=Path, help="training list (default: the spec's)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_tool(PROG, run, argv, log_level=logging.INFO)


def run(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    manifest = make_split(SPECS[args.dataset], args.root, args.seed, args.fraction, args.source)
    groups = {part: len(names) for part, names in manifest["groups"].items()}
    print(json.dumps({"images": manifest["counts"], "groups": groups}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
