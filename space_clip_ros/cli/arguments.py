"""Argument types and single flags several tools share."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from space_clip_ros.errors import UsageError
from space_clip_ros.io.limits import DEFAULT_MAX_FILE_PIXELS

MIN_IMAGE_SIDE = 8  # scenes.street's smallest image; below it the encoder's resize degenerates


def parse_size(text: str) -> tuple[int, int]:
    """argparse type for WIDTHxHEIGHT, each side at least MIN_IMAGE_SIDE pixels."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected WIDTHxHEIGHT, e.g. 1242x375"
        ) from None
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(
            f"{text!r}: each side must be at least {MIN_IMAGE_SIDE} pixels"
        )
    return width, height


def add_max_pixels(group: Any) -> None:
    """--max-pixels: the image files' limit (io/limits.py), checked with check_max_pixels."""
    group.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_FILE_PIXELS,
        metavar="N",
        help="image files with more pixels than this are refused and reported, before they are "
        f"decoded (default: {DEFAULT_MAX_FILE_PIXELS:_} = 50 MP)",
    )


def check_max_pixels(value: int) -> None:
    if value < 1:
        raise UsageError(f"--max-pixels must be >= 1, got {value}")


class DeprecatedAlias(argparse.Action):
    """An old option name kept for one release: it sets the new option's value and says, each
    time it is used, which option replaces it."""

    def __init__(self, option_strings: list[str], dest: str, *, replacement: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: Optional[str] = None,
    ) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the "
            f"next release: use {self.replacement}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_deprecated_alias(group: Any, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """`old` as a deprecated spelling of the option `new` (same destination and type)."""
    group.add_argument(
        old,
        dest=dest,
        action=DeprecatedAlias,
        replacement=new,
        default=argparse.SUPPRESS,
        help=f"deprecated spelling of {new}",
        **kwargs,
    )
