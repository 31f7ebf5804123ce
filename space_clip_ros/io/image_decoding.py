"""Camera pixels -> the 8-bit colour image the depth model reads, with OpenCV; no ROS.

Every layout a colour or mono camera publishes through sensor_msgs/Image is decoded here from
the raw fields (encoding, width, height, step, is_bigendian, data), so the conversions are
testable without messages: packed RGB/BGR(A) and mono at 8 and 16 bits, 4:2:2 YUV (UYVY and
YUY2), semi-planar YUV (NV21, NV12, NV24) and the four Bayer mosaics at 8 and 16 bits.
Encoded images are decoded here too, by one rule for CompressedImage messages (PNG, JPEG) and
image files (also BMP, TIFF, WebP, PNM): the container is walked first (image_containers: the
declared size, PNG chunk CRCs, the JPEG's markers and its number of progressive scans), the size
checked, and only then decoded, JPEG by libjpeg-turbo in strict mode so a truncated file or a
header that claims more pixels than the data holds is an error instead of a grey frame. A tiny
file can never expand into a huge frame or hours of work.

Conversions follow cv_bridge (`imgmsg_to_cv2(msg, "rgb8")`) so a frame looks the same to this
node as to any C++ image node: the same cv::cvtColor codes (OpenCV names a Bayer pattern after
the 2x2 block starting at pixel (1, 1), so ROS `bayer_rggb` is OpenCV `BayerBG`), and 16 bits
scaled to 8 by 255/65535 with rounding as cv_bridge's convertTo does (16-bit PNG, TIFF and PNM
too). The scaling comes first, so every conversion runs on 8 bits: identical to cv_bridge for
packed and mono input, within one level for 16-bit Bayer (cv_bridge demosaics at 16 bits,
which costs 10x more: bench/RESULTS.md). 8-bit packed frames are returned as views of the
message buffer (no copy).

Everything wrong with a frame is an `ImageDecodeError` carrying a short `reason` under which
the node counts drops; user-controlled strings (encoding, format) are quoted with
errors.quote, so a newline or an ANSI escape in them cannot forge a log line.
"""

from __future__ import annotations

import io
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import cv2
import numpy as np
import simplejpeg
from PIL import Image as PILImage

from space_clip_ros.errors import InputError, quote
from space_clip_ros.io import image_containers

ColorOrder = Literal["rgb", "bgr"]
HOST_IS_BIGENDIAN = sys.byteorder == "big"

# Longest side over shortest. Cameras stay far below it (KITTI 3.3:1, 32:9 ultrawide 3.6:1,
# equirectangular panoramas 2:1); above it the encoder's square (or 3:1) input squeezes one axis
# into a few pixels, and the resizes to and from the encoder cost up to minutes: a 1x8,000,000
# rgb8 frame took 22.9 s, most of it resizing the depth back up (bench/RESULTS.md, "Decode").
MAX_ASPECT_RATIO = 32


class ImageDecodeError(InputError):
    """A frame cannot be turned into an image; the text says which field is wrong.

    `reason` is a short stable key (encoding, format, compressed_depth, zero_size, too_large,
    aspect_ratio, odd_size, step, data_size, truncated, too_complex, undecodable, unreadable)
    under which the node counts rejected frames.
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


def check_size(
    width: int, height: int, max_pixels: int, setting: str = "max_image_pixels"
) -> None:
    """Reject empty, oversized and extremely elongated frames before any buffer is allocated.

    `setting` names the limit the user can raise (the node's parameter, a tool's flag).
    """
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has zero size ({width}x{height})", "zero_size")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height} pixels, above "
            f"{setting}={max_pixels}; raise it if such frames are expected",
            "too_large",
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageDecodeError(
            f"image is {width}x{height}, more than {MAX_ASPECT_RATIO}:1; the encoder sees "
            f"{MAX_ASPECT_RATIO}x more of one axis than the other, so crop or tile such frames",
            "aspect_ratio",
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


# Containers a file may hold besides PNG and JPEG (space-clip-predict, space-clip-verify): what
# image tools write. Messages never get them (see compressed_codec).
FILE_ONLY_CODECS = ("BMP", "TIFF", "WEBP", "PPM")
FILE_CODECS = ("PNG", "JPEG", *FILE_ONLY_CODECS)
MESSAGE_CODECS = ("PNG", "JPEG")
# Names that mark a file in a folder as an image of FILE_CODECS (a file named explicitly is
# tried whatever its name: the bytes decide).
IMAGE_FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Bytes per pixel of the least compact file (16-bit RGBA, uncompressed) plus room for metadata:
# a larger file cannot hold an image within the pixel limit and is not read into memory.
MAX_FILE_BYTES_PER_PIXEL = 8
FILE_METADATA_ALLOWANCE = 16 << 20
EXIF_ORIENTATION = 0x0112


def decode_compressed(data, fmt: str, max_pixels: int) -> ColorImage:
    """A CompressedImage's PNG/JPEG bytes decoded by the one rule for encoded images.

    `fmt` must name jpeg or png (compressed_codec); the bytes decide which of the two is read.
    Camera frames are never rotated, so EXIF orientation is ignored.
    """
    compressed_codec(fmt)
    source = f"compressed image (format {quote(fmt)}, {len(data)} bytes)"
    return decode_encoded(bytes(data), source, MESSAGE_CODECS, max_pixels)


def read_image_file(path: Path, max_pixels: int, setting: str = "--max-pixels") -> np.ndarray:
    """HxWx3 uint8 RGB of an image file, decoded by the rule camera messages are.

    The same header walks, limits, 16-to-8-bit scaling and truncation checks as a
    CompressedImage; files may also be BMP, TIFF, WebP or PNM, and are turned upright by their
    EXIF orientation as viewers show them. Raises ImageDecodeError (reason `unreadable` when the
    file cannot be read at all, with the system's reason: permission denied, no such file...).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_pixels * MAX_FILE_BYTES_PER_PIXEL + FILE_METADATA_ALLOWANCE:
            raise ImageDecodeError(
                f"the file is {size} bytes, more than any image within {setting}={max_pixels} "
                "needs; raise it if such images are expected",
                "too_large",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(
            f"cannot read the file ({exc.strerror or type(exc).__name__})", "unreadable"
        ) from exc
    image = decode_encoded(data, "image file", FILE_CODECS, max_pixels, setting, upright=True)
    return np.ascontiguousarray(image.rgb)


def decode_encoded(
    data: bytes,
    source: str,
    codecs: tuple[str, ...],
    max_pixels: int,
    setting: str = "max_image_pixels",
    upright: bool = False,
) -> ColorImage:
    """The colour image in encoded bytes (one of `codecs`); every failure an ImageDecodeError.

    Order of work: read the size from the header alone (PNG chunks and JPEG markers are walked
    first, which also bounds the scans of a progressive JPEG), check it against max_pixels,
    then decode. JPEG goes through libjpeg-turbo in strict mode (simplejpeg), so a warning such
    as "premature end of data segment" (a truncated file, or a header claiming more pixels than
    the data holds) is an error rather than a grey frame; everything else through OpenCV.
    16-bit samples are scaled to 8 bits by the rule raw 16-bit frames follow.
    """
    codec = image_containers.sniff(data)
    try:
        if codec == "PNG" and codec in codecs:
            container = image_containers.walk_png(data)
        elif codec == "JPEG" and codec in codecs:
            container = image_containers.walk_jpeg(data)
        else:
            container = _pillow_header(data, codecs, source)
    except image_containers.ContainerError as exc:
        raise _refused(source, exc, exc.reason) from exc
    check_size(container.width, container.height, max_pixels, setting)
    if container.scans > image_containers.MAX_JPEG_SCANS:
        raise _refused(
            source,
            f"a progressive JPEG with more than {image_containers.MAX_JPEG_SCANS} scans "
            "(decoding it would take seconds to minutes)",
            "too_complex",
        )
    image = _decode_pixels(data, container.codec, source)
    if image.pixels.shape[:2] != (container.height, container.width):
        got = f"{image.pixels.shape[1]}x{image.pixels.shape[0]}"
        raise _refused(
            source,
            f"header says {container.width}x{container.height}, decoded {got}",
            "undecodable",
        )
    if upright:
        image = ColorImage(_upright(image.pixels, container.exif), image.order)
    return image


def _refused(source: str, why: object, reason: str) -> ImageDecodeError:
    return ImageDecodeError(f"cannot decode {source}: {quote(str(why))}", reason)


def _pillow_header(data: bytes, codecs: tuple[str, ...], source: str):
    """Size and EXIF of the file-only containers, read by Pillow from the header alone."""
    others = tuple(c for c in codecs if c in FILE_ONLY_CODECS)
    expected = " or ".join(", ".join(codecs).rsplit(", ", 1))
    if not others:
        raise _refused(source, f"not a {expected}", "undecodable")
    with warnings.catch_warnings():
        # Pillow's own bomb limit is not ours: check_size decides, with the setting's name.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            with PILImage.open(io.BytesIO(data), formats=others) as header:
                exif = header.getexif()
                return image_containers.Container(
                    header.format, *header.size, exif=exif.tobytes() if exif else None
                )
        except PILImage.DecompressionBombError as exc:
            raise _refused(source, exc, "too_large") from exc
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a broken header
            raise _refused(source, f"not a {expected} ({exc})", "undecodable") from exc


def _decode_pixels(data: bytes, codec: str, source: str) -> ColorImage:
    if codec == "JPEG":
        try:
            bgr = simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True)  # as cv2 gives
            return ColorImage(bgr, "bgr")
        except ValueError as exc:
            truncated = "premature end" in str(exc).lower()
            raise _refused(source, exc, "truncated" if truncated else "undecodable") from exc
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise _refused(source, exc, "undecodable") from exc
    if bgr is None:
        raise _refused(source, "OpenCV could not decode the data", "undecodable")
    if bgr.dtype not in (np.uint8, np.uint16):
        raise _refused(source, f"{bgr.dtype} samples are not a camera image", "undecodable")
    return ColorImage(_to_8bit(bgr), "bgr")


# EXIF orientation -> the numpy view that turns the stored pixels upright (Pillow's
# ImageOps.exif_transpose table: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90
# clockwise, 7 transverse, 8 rotate 90 counter-clockwise).
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: a[::-1].transpose(1, 0, 2),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: a[:, ::-1].transpose(1, 0, 2),
}


def _upright(pixels: np.ndarray, exif: Optional[bytes]) -> np.ndarray:
    """pixels turned by their EXIF orientation; unreadable EXIF leaves them as stored."""
    if not exif:
        return pixels
    try:
        orientation = PILImage.Exif()
        orientation.load(exif)
        turn = _ORIENTATIONS.get(orientation.get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - broken EXIF is not a broken image
        return pixels
    return pixels if turn is None else turn(pixels)
