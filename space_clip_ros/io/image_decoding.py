"""Camera pixels -> the 8-bit colour image the depth model reads, with OpenCV; no ROS.

Every layout a colour or mono camera publishes through sensor_msgs/Image is decoded here from
the raw fields (encoding, width, height, step, is_bigendian, data), so the conversions are
testable without messages: packed RGB/BGR(A) and mono at 8 and 16 bits, 4:2:2 YUV (UYVY and
YUY2), semi-planar YUV (NV21, NV12, NV24) and the four Bayer mosaics at 8 and 16 bits.
Compressed frames (PNG, JPEG) are decoded here too, after their header has been read and the
size checked, so a tiny file can never expand into a huge frame.

Conversions follow cv_bridge (`imgmsg_to_cv2(msg, "rgb8")`) so a frame looks the same to this
node as to any C++ image node: the same cv::cvtColor codes (OpenCV names a Bayer pattern after
the 2x2 block starting at pixel (1, 1), so ROS `bayer_rggb` is OpenCV `BayerBG`), and 16 bits
scaled to 8 by 255/65535 with rounding as cv_bridge's convertTo does. The scaling comes first,
so every conversion runs on 8 bits: identical to cv_bridge for packed and mono input, within one
level for 16-bit Bayer (cv_bridge demosaics at 16 bits, which costs 10x more: bench/RESULTS.md).
8-bit packed frames are returned as views of the message buffer (no copy).

Everything wrong with a frame is an `ImageDecodeError` carrying a short `reason` under which
the node counts drops; user-controlled strings (encoding, format) are quoted with
errors.quote, so a newline or an ANSI escape in them cannot forge a log line.
"""

from __future__ import annotations

import io
import sys
import zlib
from dataclasses import dataclass
from typing import Literal, Optional

import cv2
import numpy as np
from PIL import Image as PILImage

from space_clip_ros.errors import InputError, quote

ColorOrder = Literal["rgb", "bgr"]
HOST_IS_BIGENDIAN = sys.byteorder == "big"



class ImageDecodeError(InputError):
    """A frame cannot be turned into an image; the text says which field is wrong.

    `reason` is a short stable key (encoding, format, compressed_depth, zero_size, too_large,
    odd_size, step, data_size, undecodable) under which the node counts rejected frames.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ColorImage:
    """An HxWx3 uint8 image and its channel order (a view into the message where possible)."""

    pixels: np.ndarray
    order: ColorOrder

    @property
    def rgb(self) -> np.ndarray:
        return self.pixels if self.order == "rgb" else self.pixels[..., ::-1]


@dataclass(frozen=True)
class Layout:
    """How one encoding lays its bytes out.

    family: packed (channels interleaved per pixel), yuv422 (2 bytes a pixel, chroma shared by
    pixel pairs), nv (a full-size luma plane then an interleaved chroma plane) or bayer.
    `code` converts the (H, W, channels) sample array to RGB with cv2.cvtColor (None: the
    channels are used as they are, in `order`).
    """

    family: Literal["packed", "yuv422", "nv", "bayer"]
    channels: int
    bits: int
    order: ColorOrder = "rgb"
    code: Optional[int] = None

    @property
    def sample_bytes(self) -> int:
        return self.bits // 8


def _layouts() -> dict[str, Layout]:
    table = {
        "rgb8": Layout("packed", 3, 8, "rgb"),
        "bgr8": Layout("packed", 3, 8, "bgr"),
        "rgba8": Layout("packed", 4, 8, "rgb"),
        "bgra8": Layout("packed", 4, 8, "bgr"),
        "mono8": Layout("packed", 1, 8, code=cv2.COLOR_GRAY2RGB),
        "rgb16": Layout("packed", 3, 16, "rgb"),
        "bgr16": Layout("packed", 3, 16, "bgr"),
        "rgba16": Layout("packed", 4, 16, "rgb"),
        "bgra16": Layout("packed", 4, 16, "bgr"),
        "mono16": Layout("packed", 1, 16, code=cv2.COLOR_GRAY2RGB),
        # sensor_msgs: yuv422 is UYVY (uyvy is its newer name); yuv422_yuy2 is YUYV.
        "uyvy": Layout("yuv422", 2, 8, code=cv2.COLOR_YUV2RGB_UYVY),
        "yuv422": Layout("yuv422", 2, 8, code=cv2.COLOR_YUV2RGB_UYVY),
        "yuyv": Layout("yuv422", 2, 8, code=cv2.COLOR_YUV2RGB_YUY2),
        "yuv422_yuy2": Layout("yuv422", 2, 8, code=cv2.COLOR_YUV2RGB_YUY2),
        "nv21": Layout("nv", 1, 8, code=cv2.COLOR_YUV2RGB_NV21),
        "nv12": Layout("nv", 1, 8, code=cv2.COLOR_YUV2RGB_NV12),
        "nv24": Layout("nv", 1, 8, code=cv2.COLOR_YUV2RGB_UYVY),  # see _nv24_as_uyvy
    }
    bayer = {"rggb": "BG", "bggr": "RG", "gbrg": "GR", "grbg": "GB"}  # ROS name -> OpenCV name
    for pattern, cv_name in bayer.items():
        for bits in (8, 16):
            code = getattr(cv2, f"COLOR_Bayer{cv_name}2RGB")
            table[f"bayer_{pattern}{bits}"] = Layout("bayer", 1, bits, code=code)
    return table


LAYOUTS: dict[str, Layout] = _layouts()
INPUT_ENCODINGS = tuple(LAYOUTS)


def check_size(width: int, height: int, max_pixels: int) -> None:
    """Reject empty frames and frames above the pixel limit before any buffer is allocated."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has zero size ({width}x{height})", "zero_size")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height} pixels, above "
            f"max_image_pixels={max_pixels}; raise the parameter if such frames are expected",
            "too_large",
        )


def _geometry(layout: Layout, encoding: str, width: int, height: int, step: int) -> int:
    """The byte size the data must have; raises for sizes the layout cannot hold."""
    shared_chroma = layout.family == "yuv422" or encoding in ("nv12", "nv21")
    if shared_chroma and (width % 2 or (layout.family == "nv" and height % 2)):
        needs = "an even width" if layout.family == "yuv422" else "an even width and height"
        raise ImageDecodeError(
            f"{quote(encoding)} needs {needs} (pixels share chroma), got {width}x{height}",
            "odd_size",
        )
    if layout.family == "bayer" and (width < 2 or height < 2):
        raise ImageDecodeError(
            f"a Bayer mosaic needs 2x2 pixels, got {width}x{height}", "odd_size"
        )
    row_bytes = width * layout.channels * layout.sample_bytes
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than the {row_bytes} bytes a row of {width} "
            f"{quote(encoding)} pixels needs",
            "step",
        )
    if layout.family != "nv":
        return step * height
    # NV21/NV12: height luma rows then height/2 chroma rows, all `step` apart.
    # NV24: height luma rows of `step`, then height chroma rows of 2 * step (full-size chroma).
    return step * height * 3 if encoding == "nv24" else step * (height + height // 2)


def _rows(flat: np.ndarray, count: int, stride: int, used: int) -> np.ndarray:
    """(count, used) view of `count` rows `stride` bytes apart, skipping the row padding."""
    return flat[: count * stride].reshape(count, stride)[:, :used]


def _nv24_as_uyvy(luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """NV24 (4:4:4) rewritten as a UYVY image of twice the width, every luma sample doubled.

    OpenCV has no NV24 decoder; in UYVY each pixel pair shares one (U, V), so with each luma
    doubled the even output columns are exactly the 4:4:4 pixels, converted with the same
    BT.601 coefficients as NV21 and UYVY (one conversion rule for every YUV input).
    """
    h, w = luma.shape
    u, v = cv2.split(np.ascontiguousarray(chroma))
    luma = np.ascontiguousarray(luma)
    return cv2.merge([u, luma, v, luma]).reshape(h, 2 * w, 2)


def _to_8bit(samples: np.ndarray) -> np.ndarray:
    """16 -> 8 bits as cv_bridge does it (convertTo with 255/65535, rounded)."""
    if samples.dtype == np.uint8:
        return samples
    return cv2.convertScaleAbs(samples, alpha=255.0 / 65535.0)


def decode_raw(
    data,
    encoding: str,
    width: int,
    height: int,
    step: int,
    is_bigendian: bool,
    max_pixels: int,
    order_override: Optional[ColorOrder] = None,
) -> ColorImage:
    """The colour image in a raw frame (the fields of a sensor_msgs/Image).

    order_override relabels packed RGB/BGR input, for drivers that label BGR data rgb8 (or the
    reverse); it has no meaning for mono, YUV or Bayer input and is ignored there.
    """
    layout = LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError(
            f"unsupported encoding {quote(encoding)}; supported: {', '.join(INPUT_ENCODINGS)}",
            "encoding",
        )
    check_size(width, height, max_pixels)
    expected = _geometry(layout, encoding, width, height, step)
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "oversized"
        raise ImageDecodeError(
            f"data is {kind}: {len(data)} bytes where {quote(encoding)} at {width}x{height} "
            f"with step {step} needs {expected}",
            "data_size",
        )
    flat = np.frombuffer(data, dtype=np.uint8)
    row_bytes = width * layout.channels * layout.sample_bytes
    if layout.family == "nv":
        if encoding == "nv24":
            luma = _rows(flat, height, step, width)
            chroma = _rows(flat[height * step :], height, 2 * step, 2 * width)
            rgb = cv2.cvtColor(_nv24_as_uyvy(luma, chroma.reshape(height, width, 2)), layout.code)
            return ColorImage(rgb[:, ::2], "rgb")
        planes = _rows(flat, height + height // 2, step, width)
        return ColorImage(cv2.cvtColor(np.ascontiguousarray(planes), layout.code), "rgb")
    rows = _rows(flat, height, step, row_bytes)
    if layout.bits == 16:
        order = ">u2" if is_bigendian else "<u2"
        rows = _to_8bit(np.ascontiguousarray(rows).view(order).astype(np.uint16, copy=False))
    samples = rows.reshape(height, width, layout.channels)
    if layout.code is not None:
        rgb = cv2.cvtColor(samples if layout.channels > 1 else samples[..., 0], layout.code)
        return ColorImage(rgb, "rgb")
    return ColorImage(samples[..., :3], order_override or layout.order)


# ------------------------------------------------------------------------------- compressed


# What image_transport's compressed plugin writes in `format`: "jpeg" / "png" (old publishers),
# "<encoding>; jpeg compressed <encoding>" (newer), "<encoding>; compressedDepth [png|rvl]" for
# the depth plugin. The word after ';' (or the whole string) names the codec.
COMPRESSED_CODECS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG"}


def compressed_codec(fmt: str) -> Optional[str]:
    """The codec a CompressedImage `format` declares (JPEG or PNG); None when it is empty.

    Raises for anything else: a GIF, TIFF or WebP is not what a camera publishes, and every
    extra decoder is attack surface on a node that decodes bytes from the network.
    """
    if not fmt.isprintable():
        raise ImageDecodeError(
            f"compressed format {quote(fmt)} contains control characters", "format"
        )
    text = fmt.strip().lower()
    declared = text.split(";", 1)[1].strip() if ";" in text else text
    if declared.startswith("compresseddepth"):
        raise ImageDecodeError(
            f"format {quote(fmt)} is a compressedDepth stream (a depth image, not a colour "
            "image); subscribe the node to the camera's colour topic",
            "compressed_depth",
        )
    if not declared:
        return None
    codec = COMPRESSED_CODECS.get(declared.split()[0])
    if codec is None:
        raise ImageDecodeError(
            f"compressed format {quote(fmt)} is not jpeg or png; publish the camera with "
            "image_transport's compressed plugin (jpeg or png)",
            "format",
        )
    return codec


def _undecodable(fmt: str, size: int, why: object) -> ImageDecodeError:
    return ImageDecodeError(
        f"cannot decode compressed image (format {quote(fmt)}, {size} bytes): {quote(str(why))}",
        "undecodable",
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_chunks(buffer: memoryview) -> None:
    """Walk the PNG's chunks: each must fit the buffer and match its CRC, up to IEND.

    OpenCV's PNG reader spends seconds on a 50-byte PNG whose chunk length points past the end
    of the data (measured: 4.3 s with OpenCV 4.11 and 5.0), which would stall the node's worker;
    this walk costs one CRC pass (microseconds for a camera frame) and refuses such files first.
    """
    position, end = len(PNG_SIGNATURE), len(buffer)
    while position + 12 <= end:
        length = int.from_bytes(buffer[position : position + 4], "big")
        kind = bytes(buffer[position + 4 : position + 8])
        body_end = position + 8 + length
        if length > 0x7FFFFFFF or body_end + 4 > end:
            raise ValueError(f"chunk {kind!r} at byte {position} runs past the end of the data")
        crc = int.from_bytes(buffer[body_end : body_end + 4], "big")
        if zlib.crc32(buffer[position + 4 : body_end]) != crc:
            raise ValueError(f"chunk {kind!r} at byte {position} fails its CRC")
        if kind == b"IEND":
            return
        position = body_end + 4
    raise ValueError("no IEND chunk: the data is truncated")


def decode_compressed(data, fmt: str, max_pixels: int) -> ColorImage:
    """Decode PNG/JPEG bytes with cv2.imdecode after reading the size from the header alone.

    Pillow only parses the header (PNG and JPEG plugins only), which costs microseconds and
    bounds the memory before OpenCV allocates the frame. Any failure of either library, whatever
    it raises (Pillow raises SyntaxError for a broken PNG), is an ImageDecodeError: bad bytes are
    an input problem, never an inference failure.
    """
    compressed_codec(fmt)
    buffer = memoryview(data)
    try:
        with PILImage.open(io.BytesIO(buffer), formats=("PNG", "JPEG")) as header:
            width, height = header.size
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad frame
        raise _undecodable(fmt, len(buffer), f"not a PNG or JPEG ({exc})") from exc
    check_size(width, height, max_pixels)
    try:
        if bytes(buffer[: len(PNG_SIGNATURE)]) == PNG_SIGNATURE:
            _check_png_chunks(buffer)
    except ValueError as exc:
        raise _undecodable(fmt, len(buffer), exc) from exc
    try:
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # camera frames are never rotated
        bgr = cv2.imdecode(np.frombuffer(buffer, np.uint8), flags)
    except cv2.error as exc:
        raise _undecodable(fmt, len(buffer), exc) from exc
    if bgr is None or bgr.shape[:2] != (height, width):
        got = "nothing" if bgr is None else f"{bgr.shape[1]}x{bgr.shape[0]}"
        raise _undecodable(fmt, len(buffer), f"header says {width}x{height}, decoded {got}")
    return ColorImage(bgr, "bgr")
