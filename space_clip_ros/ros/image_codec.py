"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

cv_bridge is not installable everywhere this package runs (no wheel for numpy 2), and the node
needs only a handful of 8-bit colour encodings in and 32FC1 / bgr8 out. Incoming data is viewed,
not copied: rclpy hands `data` over as an array.array, which numpy wraps with `frombuffer`, and
row padding (`step` > width * channels) is skipped with strides. Every inconsistency between the
header fields and the buffer is an `ImageDecodeError` naming the field, because a driver bug that
silently shears or truncates frames is worse than a dropped frame.
"""

from __future__ import annotations

import array
import io
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from space_clip_ros.errors import InputError

ColorOrder = Literal["rgb", "bgr"]

# encoding -> (channels, colour order of the first three channels)
INPUT_ENCODINGS: dict[str, tuple[int, ColorOrder]] = {
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "rgba8": (4, "rgb"),
    "bgra8": (4, "bgr"),
    "mono8": (1, "rgb"),
}

_HOST_IS_BIGENDIAN = sys.byteorder == "big"


class ImageDecodeError(InputError):
    """A message cannot be turned into an image; the text says which field is wrong.

    `reason` is a short stable key (encoding, zero_size, too_large, step, data_size,
    undecodable) under which the node counts rejected frames.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ColorImage:
    """An HxWx3 uint8 image and the order of its channels (a view into the message where possible)."""

    pixels: np.ndarray
    order: ColorOrder

    @property
    def rgb(self) -> np.ndarray:
        return self.pixels if self.order == "rgb" else self.pixels[..., ::-1]


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has zero size ({width}x{height})", "zero_size")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height} pixels, above max_image_pixels={max_pixels}; "
            "raise the parameter if such frames are expected",
            "too_large",
        )


def image_to_array(msg: Image, max_pixels: int) -> np.ndarray:
    """(H, W, C) uint8 view of an 8-bit Image in one of INPUT_ENCODINGS (C = 1, 3 or 4)."""
    if msg.encoding not in INPUT_ENCODINGS:
        raise ImageDecodeError(
            f"unsupported encoding '{msg.encoding}'; supported: {', '.join(INPUT_ENCODINGS)}",
            "encoding",
        )
    channels = INPUT_ENCODINGS[msg.encoding][0]
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    _check_size(width, height, max_pixels)
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than width * channels = {width} * {channels} = {row_bytes}",
            "step",
        )
    expected = step * height
    if len(msg.data) != expected:
        kind = "truncated" if len(msg.data) < expected else "oversized"
        raise ImageDecodeError(
            f"data is {kind}: {len(msg.data)} bytes, step * height = {expected}", "data_size"
        )
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    return flat.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)


def image_to_color(
    msg: Image, max_pixels: int, order_override: ColorOrder | None = None
) -> ColorImage:
    """The colour image a depth model reads: alpha dropped, mono replicated to three channels.

    order_override exists for drivers that label BGR data rgb8 (or the reverse).
    """
    pixels = image_to_array(msg, max_pixels)
    channels, order = INPUT_ENCODINGS[msg.encoding]
    if channels == 1:
        return ColorImage(np.repeat(pixels, 3, axis=2), "rgb")
    return ColorImage(pixels[..., :3], order_override or order)


def compressed_to_color(msg: CompressedImage, max_pixels: int) -> ColorImage:
    """Decode a jpeg/png CompressedImage with PIL; the size limit is checked before decoding."""
    try:
        with PILImage.open(io.BytesIO(memoryview(msg.data))) as img:
            _check_size(img.width, img.height, max_pixels)
            rgb = np.asarray(img.convert("RGB"))
    except ImageDecodeError:
        raise
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageDecodeError(
            f"cannot decode compressed image (format '{msg.format}', {len(msg.data)} bytes): {exc}",
            "undecodable",
        ) from exc
    return ColorImage(rgb, "rgb")


def to_message_bytes(data: np.ndarray) -> array.array:
    """The message field type rclpy stores; filling it from the buffer costs one copy."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(data).data.cast("B"))
    return out


def array_to_image(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """An Image from an (H, W) float32 (32FC1) or (H, W, 3) uint8 (rgb8/bgr8) array."""
    expected = {"32FC1": (np.float32, 2), "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3)}
    if encoding not in expected:
        raise ValueError(f"cannot encode '{encoding}'; supported: {', '.join(expected)}")
    dtype, ndim = expected[encoding]
    if pixels.dtype != dtype or pixels.ndim != ndim or (ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(
            f"{encoding} needs a {dtype.__name__} array of ndim {ndim}, got {pixels.dtype} {pixels.shape}"
        )
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = _HOST_IS_BIGENDIAN and pixels.dtype.itemsize > 1
    msg.step = msg.width * pixels.dtype.itemsize * (pixels.shape[2] if ndim == 3 else 1)
    msg.data = to_message_bytes(pixels)
    return msg


def depth_to_image(depth: np.ndarray, header: Header) -> Image:
    """32FC1 metres (REP 118), NaN where invalid."""
    return array_to_image(depth, "32FC1", header)
