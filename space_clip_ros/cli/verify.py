"""`space-clip-verify`: the configured backend and precision against fp32 PyTorch of the same
weights, on the built-in street or the user's images (inference/verify.py does the work).

Exit 0 within tolerance, 1 not, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from space_clip_ros.cli.arguments import add_max_pixels, check_max_pixels, parse_size
from space_clip_ros.cli.camera_options import FIX as CAMERA_FIX
from space_clip_ros.cli.camera_options import CameraOptions
from space_clip_ros.cli.model_options import ModelOptions
from space_clip_ros.errors import ConfigError, run_tool
from space_clip_ros.inference.verify import (
    DEFAULT_FRAMES,
    DEFAULT_SIZE,
    DEFAULT_TOLERANCE,
    image_files,
    synthetic_images,
    verify_estimator,
)

PROG = "space-clip-verify"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Does the deployed backend/precision still predict what fp32 PyTorch does?",
        epilog="Exit status: 0 within tolerance, 1 not, 2 usage or configuration error.",
    )
    model = ModelOptions.add_to(parser, "model to check")
    model.add_argument(
        "--reference",
        metavar="CKPT",
        help="PyTorch checkpoint directory an .onnx graph was exported from (default: the "
        "graph itself on ONNX Runtime's CPU provider in fp32)",
    )
    frames = parser.add_argument_group("frames")
    frames.add_argument(
        "images", nargs="*", type=Path, help="image files or folders (default: synthetic frames)"
    )
    add_max_pixels(frames)
    CameraOptions.add_to(parser)  # for image files; synthetic frames know their camera
    frames.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="synthetic frames")
    frames.add_argument(
        "--size",
        type=parse_size,
        default=DEFAULT_SIZE,
        metavar="WxH",
        help=f"synthetic frame size (default: {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"largest AbsRel and per-frame scale spread accepted (default {DEFAULT_TOLERANCE})",
    )
    return parser


def run(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.tolerance < 1 or args.frames < 1:
        raise ConfigError(
            f"--tolerance {args.tolerance} / --frames {args.frames} out of range",
            fix="use 0 < --tolerance < 1 and --frames >= 1",
        )
    check_max_pixels(args.max_pixels)
    images = (
        image_files(args.images, args.max_pixels)
        if args.images
        else synthetic_images(args.frames, args.size)
    )
    camera = CameraOptions.from_args(args)
    candidate = ModelOptions.from_settings(args).load()
    if args.images:
        report = verify_estimator(candidate, images, args.tolerance, args.reference,
                                  camera.intrinsics_for, CAMERA_FIX)  # fmt: skip
    else:
        report = verify_estimator(candidate, images, args.tolerance, args.reference)
    print(report.text())
    return 0 if report.passed else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_tool(PROG, run, argv, usage=build_parser().format_usage, log_level=logging.WARNING)


if __name__ == "__main__":
    raise SystemExit(main())
