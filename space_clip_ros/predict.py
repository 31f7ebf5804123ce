"""space-clip-predict: metric depth for image files and folders, or the built-in synthetic drive.

No ROS needed. Writes, per input image, a KITTI-convention 16-bit PNG (metres x 256), a float32
.npy and a colourised preview over a fixed metric range. With --synthetic N it renders N frames
of the built-in synthetic street (space_clip_ros.scenes.street), writes the RGB and the exact
ground truth beside the predictions and prints the standard depth metrics: a first run needs
neither images, nor a dataset, nor weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from space_clip_ros.cli.arguments import (
    add_deprecated_alias,
    add_max_pixels,
    check_max_pixels,
    parse_size,
)
from space_clip_ros.cli.camera_options import FIX as CAMERA_FIX
from space_clip_ros.cli.camera_options import CameraOptions
from space_clip_ros.cli.model_options import ModelOptions
from space_clip_ros.errors import EXIT_FAILURE, EXIT_OK, UsageError, run_tool
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.io.image_decoding import (
    IMAGE_FILE_SUFFIXES,
    ImageDecodeError,
    read_image_file,
)
from space_clip_ros.io.outputs import FORMATS, write_outputs, write_synthetic_frame
from space_clip_ros.metrics import RunningMetrics, compute_metrics, format_table
from space_clip_ros.scenes.street import DriveConfig, SyntheticDrive

if TYPE_CHECKING:  # torch is imported lazily, after argument parsing, to keep --help instant
    from space_clip_ros.inference import DepthEstimator

PROG = "space-clip-predict"
log = logging.getLogger(PROG)

UNTRAINED_BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  NO --checkpoint GIVEN: the SPACE-CLIP decoder is UNTRAINED (random weights). !!
!!  Every depth value written by this run is MEANINGLESS.                        !!
!!  The whole pipeline still runs, so you can try the tool and its outputs.      !!
!!  For real depth pass --checkpoint DIR (decoder.safetensors + config.yaml,     !!
!!  produced by training/).                                                      !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""

EPILOG = """\
examples:
  # one image -> out/photo_depth.png (16-bit, metres*256), out/photo_depth.npy,
  #              out/photo_preview.png
  space-clip-predict photo.jpg --checkpoint checkpoints/kitti --output-dir out

  # a whole folder tree on the GPU in half precision, only the 16-bit PNGs, 8 images per batch
  space-clip-predict drive/image_02/data --recursive --checkpoint checkpoints/kitti \\
      --device cuda --precision fp16 --png16 --batch-size 8 --output-dir out

  # no images at hand: 20 frames of the built-in synthetic street, with metrics against its
  # exact ground truth (without --checkpoint the model is untrained and says so loudly)
  space-clip-predict --synthetic 20 --output-dir out

outputs:
  <name>_depth.png    16-bit PNG, KITTI convention: value / 256 = metres, 0 = no depth
  <name>_depth.npy    float32 metres, HxW, the same size as the input image
  <name>_preview.png  Turbo colours over the fixed --colorize-min..--colorize-max range
                      (red = near, blue = far; the same colour is the same distance in
                      every image)
  Files from a folder keep their path relative to it, under a subfolder named after it.
  --synthetic writes <output-dir>/synthetic/<frame>_rgb.png (the rendered image),
  <frame>_gt.png (exact ground truth, 16-bit KITTI convention, 0 = sky), <frame>_gt_preview.png,
  the predictions named as above, and metrics.json.

exit status:
  0 all done; 1 some images or sub-folders could not be read or written (each reported with
  its path and skipped, the others are written); 2 bad arguments, inputs, output folder or
  checkpoint (nothing is written).
"""


@dataclass(frozen=True)
class Job:
    """One input image and the output path stem (without suffix) its results are written to."""

    source: Path
    out_stem: Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Metric monocular depth with SPACE-CLIP for image files and folders "
        "(no ROS needed).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument(
        "inputs", nargs="*", type=Path, help="image files and/or folders of images"
    )
    inputs.add_argument(
        "-r", "--recursive", action="store_true", help="also take images from subfolders"
    )
    inputs.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="also run on N frames of the built-in synthetic driving sequence and print metrics "
        "against its exact ground truth",
    )
    add_max_pixels(inputs)
    inputs.add_argument(
        "--synthetic-size",
        type=parse_size,
        default=(1242, 375),
        metavar="WxH",
        help="image size of the synthetic frames (default: KITTI's 1242x375)",
    )

    model = ModelOptions.add_to(parser)
    CameraOptions.add_to(parser)
    model.add_argument(
        "--batch-size",
        type=int,
        default=4,
        metavar="N",
        help="images per forward pass; consecutive images of one size are batched (default: 4)",
    )

    outputs = parser.add_argument_group(
        "outputs (none of --png16/--npy/--preview given: all three)"
    )
    outputs.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("depth_output"),
        metavar="DIR",
        help="where results go (default: ./depth_output)",
    )
    outputs.add_argument(
        "--png16", action="store_true", help="write 16-bit KITTI-convention depth PNGs"
    )
    outputs.add_argument("--npy", action="store_true", help="write float32 .npy depth in metres")
    outputs.add_argument("--preview", action="store_true", help="write colourised preview PNGs")
    # The node's names for the same thing; its min_depth/max_depth mask depth, which this tool
    # never does (the files hold the model's depth as it is).
    outputs.add_argument(
        "--colorize-min",
        type=float,
        default=1.0,
        metavar="M",
        help="depth drawn red in the previews, metres (default: 1)",
    )
    outputs.add_argument(
        "--colorize-max",
        type=float,
        default=80.0,
        metavar="M",
        help="depth drawn blue in the previews, metres (default: 80)",
    )
    for old, new in (("--min-depth", "--colorize-min"), ("--max-depth", "--colorize-max")):
        dest = new[2:].replace("-", "_")
        add_deprecated_alias(outputs, old, new, dest, type=float, metavar="M")
    outputs.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def selected_formats(args: argparse.Namespace) -> tuple[str, ...]:
    """The formats asked for; none asked for means all three."""
    chosen = tuple(f for f in FORMATS if getattr(args, f))
    return chosen or FORMATS


def validate(args: argparse.Namespace) -> None:
    if not args.inputs and args.synthetic <= 0:
        raise UsageError(
            "nothing to do: give image files or folders, or --synthetic N (see --help)"
        )
    if args.synthetic < 0:
        raise UsageError(f"--synthetic must be >= 0, got {args.synthetic}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_max_pixels(args.max_pixels)
    if not (0 <= args.colorize_min < args.colorize_max):
        raise UsageError(
            f"need 0 <= --colorize-min < --colorize-max, got {args.colorize_min} and "
            f"{args.colorize_max}"
        )


def prepare_output_dir(output_dir: Path, *, create: bool) -> None:
    """Prove the output folder can take the results, so a bad one ends the run with exit 2.

    create=False (before the model loads) writes nothing: the nearest existing folder on the
    path must be a writable folder. create=True (once the model is ready) makes the folder and
    writes and removes a probe file, which also catches what access() cannot see.
    """
    fix = "choose another --output-dir, or make this one a folder you can write to"

    def refuse(problem: str) -> UsageError:
        return UsageError(problem, source=output_dir, field="--output-dir", fix=fix)

    existing = next(p for p in (output_dir, *output_dir.parents) if p.exists() or p == Path())
    if existing != Path() and not existing.is_dir():
        where = "" if existing == output_dir else f" ({existing} is a file)"
        raise refuse(f"exists and is not a folder{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise refuse(f"cannot write there ({existing}: permission denied)")
    if not create:
        return
    probe = output_dir / f".space-clip-predict-write-test-{os.getpid()}"
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise refuse(f"cannot write there ({exc.strerror or exc})") from exc


def list_images(folder: Path, recursive: bool, unreadable: list[str]) -> list[Path]:
    """Image files in folder (and its subfolders with recursive), sorted.

    The named folder itself must be listable (a usage error otherwise); a sub-folder that cannot
    be listed is appended to `unreadable` with the reason, so the run reports it and exits 1
    instead of silently missing its images (Path.glob skips such folders without a word).
    """

    def report(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        if where == folder:
            raise UsageError(
                f"cannot list the folder ({exc.strerror or exc})",
                source=folder,
                fix="check the path and its read permission",
            )
        unreadable.append(f"{where}: cannot list the folder ({exc.strerror or exc}); skipped")

    files: list[Path] = []
    for root, dirs, names in os.walk(folder, onerror=report):
        dirs.sort()
        if not recursive:
            dirs.clear()
        images = (n for n in names if Path(n).suffix.lower() in IMAGE_FILE_SUFFIXES)
        candidates = (Path(root) / n for n in images)
        files.extend(p for p in candidates if p.is_file())  # no FIFOs, sockets, broken links
    return sorted(files)


def collect_jobs(
    inputs: Sequence[Path], output_dir: Path, recursive: bool
) -> tuple[list[Job], list[str]]:
    """Expand files and folders into jobs, and the sub-folders that could not be listed.

    A folder's files keep their relative path under <out>/<folder name>.
    """
    jobs: list[Job] = []
    unreadable: list[str] = []
    for path in inputs:
        if path.is_dir():
            files = list_images(path, recursive, unreadable)
            if not files and not unreadable:
                hint = "" if recursive else " (use --recursive to search subfolders)"
                suffixes = ", ".join(IMAGE_FILE_SUFFIXES)
                raise UsageError(f"{path}: no images ({suffixes}) found{hint}")
            base = output_dir / path.resolve().name
            jobs.extend(Job(f, base / f.relative_to(path).with_suffix("")) for f in files)
        elif path.is_file():
            jobs.append(
                Job(path, output_dir / path.stem)
            )  # explicitly named: tried whatever its suffix
        else:
            raise UsageError(f"{path}: no such file or folder")
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.out_stem in seen:
            raise UsageError(
                f"{seen[job.out_stem]} and {job.source} would both write {job.out_stem}_*; "
                "rename one or process them in separate runs with different --output-dir"
            )
        seen[job.out_stem] = job.source
    return jobs, unreadable


def _loaded_batches(
    jobs: Sequence[Job], args: argparse.Namespace, failed: list[str], bar: tqdm
) -> Iterator[list[tuple[Job, np.ndarray]]]:
    """Consecutive readable images of one size, up to --batch-size.

    Unreadable ones are reported and skipped. Files are decoded by the rule the node decodes
    CompressedImage messages with (io/image_decoding.read_image_file): the same size checks,
    16-bit scaling and refusal of truncated data.
    """
    batch: list[tuple[Job, np.ndarray]] = []
    for job in jobs:
        try:
            image = read_image_file(job.source, args.max_pixels)
        except ImageDecodeError as exc:  # the node's rule and reasons (io/image_decoding)
            reason = f"cannot read image ({exc.reason}: {exc})"
            log.error("%s: %s; skipped", job.source, reason)
            failed.append(f"{job.source}: {reason}")
            bar.update(1)
            continue
        if batch and (len(batch) == args.batch_size or batch[0][1].shape != image.shape):
            yield batch
            batch = []
        batch.append((job, image))
    if batch:
        yield batch


def run_images(
    estimator: "DepthEstimator",
    jobs: Sequence[Job],
    args: argparse.Namespace,
    formats: tuple[str, ...],
) -> list[Path]:
    """Predict and write every job; returns 'path: reason' for each that was skipped."""
    failed: list[str] = []
    show_bar = len(jobs) > 1 and not args.no_progress
    with tqdm(total=len(jobs), unit="img", desc="depth", disable=not show_bar) as bar:
        for batch in _loaded_batches(jobs, args, failed, bar):
            height, width = batch[0][1].shape[:2]  # a batch holds images of one size
            depths = estimator.predict(
                np.stack([image for _, image in batch]),
                camera=args.camera.intrinsics_for(width, height),
                camera_fix=CAMERA_FIX,
            )
            for (job, _), depth in zip(batch, depths):
                try:  # all of the image's files or none of them
                    write_outputs(
                        depth, job.out_stem, formats, args.colorize_min, args.colorize_max
                    )
                except OSError as exc:  # e.g. a file where a sub-folder must go, a full disk
                    reason = f"cannot write {job.out_stem}_*, none written ({exc.strerror or exc})"
                    log.error("%s: %s; skipped", job.source, reason)
                    failed.append(f"{job.source}: {reason}")
            bar.update(len(batch))
    return failed


def run_synthetic(
    estimator: "DepthEstimator", args: argparse.Namespace, formats: tuple[str, ...]
) -> dict[str, float]:
    """Predict on the synthetic drive, write RGB, ground truth and predictions, print metrics.

    Returns the mean metrics.
    """
    width, height = args.synthetic_size
    drive = SyntheticDrive(DriveConfig(width=width, height=height))
    out_dir = args.output_dir / "synthetic"
    out_dir.mkdir(parents=True, exist_ok=True)
    running, scaled = RunningMetrics(), RunningMetrics()
    rows = []
    frames = tqdm(
        drive.frames(args.synthetic),
        total=args.synthetic,
        unit="frame",
        desc="synthetic",
        disable=args.synthetic <= 1 or args.no_progress,
    )
    for frame in frames:  # rendered through a known camera: depth mapped to it
        depth = estimator.predict(frame.rgb, camera=frame.intrinsics)
        write_synthetic_frame(out_dir, frame, depth, formats, args.colorize_min, args.colorize_max)
        metrics = compute_metrics(depth, frame.depth)
        running.update(metrics)
        scaled.update(compute_metrics(depth, frame.depth, median_scaling=True))
        rows.append((f"frame {frame.index}", metrics))
    means = running.mean()
    rows += [("mean", means), ("med-scaled", scaled.mean())]
    print(
        f"\nSynthetic drive, {args.synthetic} frame(s) at {width}x{height}, "
        "ground truth 1e-3..80 m ('med-scaled': predictions median-scaled to the ground truth, "
        "i.e. scale ignored):"
    )
    print(format_table(rows))
    summary = {
        "frames": args.synthetic,
        "size": [width, height],
        "mean": means,
        "mean_median_scaled": scaled.mean(),
    }
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    log.info(
        "synthetic RGB, ground truth (*_gt.png), predictions and metrics.json written to %s",
        out_dir,
    )
    return means


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_tool(PROG, run, argv, usage=build_parser().format_usage, log_level=logging.INFO)


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Exit 2 (nothing written) for bad arguments, inputs, output folder or checkpoint, before
    any image is read; 1 when some images could not be read or written."""
    args = build_parser().parse_args(argv)
    formats = selected_formats(args)
    validate(args)
    jobs, unreadable = collect_jobs(args.inputs, args.output_dir, args.recursive)
    prepare_output_dir(args.output_dir, create=False)
    options = ModelOptions.from_settings(args)
    args.camera = CameraOptions.from_args(args)
    if options.checkpoint is None:
        log.warning(UNTRAINED_BANNER)
    estimator = options.load()
    prepare_output_dir(args.output_dir, create=True)
    log.info("model ready on %s (%s)", estimator.device, estimator.precision)

    with logging_redirect_tqdm():
        skipped = run_images(estimator, jobs, args, formats) if jobs else []
        if args.synthetic:
            run_synthetic(estimator, args, formats)

    failed = unreadable + skipped
    written = len(jobs) - len(skipped)
    if jobs:
        log.info(
            "%d of %d image(s) written to %s (%s)",
            written,
            len(jobs),
            args.output_dir,
            ", ".join(formats),
        )
    if options.checkpoint is None:
        log.warning(
            "reminder: no --checkpoint was given, so these depths come from an UNTRAINED model"
        )
    if failed:
        log.error("%d input(s) skipped:\n  %s", len(failed), "\n  ".join(failed))
        return EXIT_FAILURE
    return EXIT_OK


def deprecated_main() -> int:
    """`space-clip-depth`, the tool's old name, one character away from the node's name."""
    print(
        "space-clip-depth is deprecated and will be removed in the next release: "
        "use space-clip-predict (same arguments)",
        file=sys.stderr,
    )
    return main()


if __name__ == "__main__":
    sys.exit(main())
