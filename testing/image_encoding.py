"""An RGB image written the way a camera driver publishes it, in any encoding the node reads.

The inverse of image_decoding for tests, the decode benchmark and anyone simulating a camera:
packed RGB/BGR(A)/mono at 8 and 16 bits (either byte order), 4:2:2 and semi-planar YUV
(BT.601 limited range, as cv2 writes I420) and the Bayer mosaics (each pixel keeps the one
colour its filter passes), with optional row padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from space_clip_ros.io.image_decoding import LAYOUTS


@dataclass(frozen=True)
class RawFrame:
    """The fields of a sensor_msgs/Image that describe its pixels."""

    data: bytes
    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: bool


def _padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Rows of bytes with `pad` zero bytes after each; (data, step)."""
    rows = np.ascontiguousarray(rows).view(np.uint8).reshape(rows.shape[0], -1)
    out = np.zeros((rows.shape[0], rows.shape[1] + pad), np.uint8)
    out[:, : rows.shape[1]] = rows
    return out.tobytes(), out.shape[1]


def _yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V planes, all full size (chroma shared by 2x2 pixels): cv2's BT.601 I420, the
    decoders' inverse. An odd size is padded by its edge for the conversion and cropped back."""
    h, w = rgb.shape[:2]
    even = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    eh, ew = even.shape[:2]
    i420 = cv2.cvtColor(np.ascontiguousarray(even), cv2.COLOR_RGB2YUV_I420).reshape(-1)
    quarter = eh * ew // 4
    y = i420[: eh * ew].reshape(eh, ew)
    u = i420[eh * ew : eh * ew + quarter].reshape(eh // 2, ew // 2)
    v = i420[eh * ew + quarter :].reshape(eh // 2, ew // 2)
    full = (np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:h, :w] for c in (u, v))
    return (y[:h, :w], *full)


def _bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The mosaic a sensor with the 2x2 filter `pattern` (e.g. 'rggb') records."""
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.empty(rgb.shape[:2], rgb.dtype)
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return mosaic


def encode_rgb(rgb: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> RawFrame:
    """`rgb` (H, W, 3) uint8 in `encoding`; 16-bit encodings scale by 257 (255 -> 65535).

    The 4:2:2 encodings need an even width, NV12/NV21 an even width and height.
    """
    layout = LAYOUTS[encoding]
    h, w = rgb.shape[:2]
    wide = rgb.astype(np.uint16) * 257 if layout.bits == 16 else rgb
    if layout.family == "packed":
        pixels = wide if layout.order == "rgb" else wide[..., ::-1]
        if layout.channels == 4:
            alpha = np.full((h, w, 1), 65535 if layout.bits == 16 else 255, wide.dtype)
            pixels = np.concatenate([pixels, alpha], axis=2)
        if layout.channels == 1:
            gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
            pixels = gray.astype(np.uint16) * 257 if layout.bits == 16 else gray
        rows = np.ascontiguousarray(pixels).reshape(h, -1)
    elif layout.family == "bayer":
        rows = _bayer(wide, encoding[len("bayer_") : len("bayer_") + 4])
    else:
        y, u2, v2 = _yuv420(rgb)
        if layout.family == "yuv422":  # each pixel: its Y and, alternately, the pair's U or V
            chroma = np.where(np.arange(w) % 2 == 0, u2, v2)
            uyvy = layout.code == cv2.COLOR_YUV2RGB_UYVY
            rows = np.stack([chroma, y] if uyvy else [y, chroma], axis=2).reshape(h, 2 * w)
        elif encoding == "nv24":
            data_y, step = _padded(y, pad)
            data_uv, _ = _padded(np.stack([u2, v2], axis=2).reshape(h, 2 * w), 2 * pad)
            return RawFrame(data_y + data_uv, encoding, w, h, step, False)
        else:
            first, second = (v2, u2) if encoding == "nv21" else (u2, v2)
            chroma = np.stack([first[::2, ::2], second[::2, ::2]], axis=2).reshape(h // 2, w)
            rows = np.concatenate([y, chroma])
    if layout.bits == 16:
        rows = rows.astype(">u2" if bigendian else "<u2")
    data, step = _padded(rows, pad * layout.sample_bytes)
    return RawFrame(data, encoding, w, h, step, bigendian and layout.bits == 16)
