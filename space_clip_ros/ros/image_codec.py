"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

cv_bridge is not installable everywhere this package runs (no wheel for numpy 2), so the
node converts messages itself: incoming frames are handed to the ROS-free decoders in
space_clip_ros.io.image_decoding (OpenCV, every camera encoding, cv_bridge's conversion rules),
and outgoing depth / preview arrays are written here. Every inconsistency between the header
fields and the buffer is an `ImageDecodeError` naming the field, because a driver bug that
silently shears or truncates frames is worse than a dropped frame.
"""

from __future__ import annotations

import array
from typing import Optional

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from space_clip_ros.io.host_buffer import HostBuffer
from space_clip_ros.io.image_decoding import (
    HOST_IS_BIGENDIAN,
    INPUT_ENCODINGS,
    ColorImage,
    ColorOrder,
    ImageDecodeError,
    decode_compressed,
    decode_raw,
)

__all__ = [
    "INPUT_ENCODINGS",
    "ColorImage",
    "ColorOrder",
    "ImageDecodeError",
    "array_to_image",
    "compressed_to_color",
    "decode_image",
    "depth_to_image",
    "image_message",
    "image_to_color",
    "to_message_bytes",
]


def image_to_color(
    msg: Image, max_pixels: int, order_override: Optional[ColorOrder] = None
) -> ColorImage:
    """The colour image a depth model reads from an Image in any of INPUT_ENCODINGS.

    order_override exists for drivers that label BGR data rgb8 (or the reverse).
    """
    return decode_raw(
        msg.data,
        msg.encoding,
        int(msg.width),
        int(msg.height),
        int(msg.step),
        bool(msg.is_bigendian),
        max_pixels,
        order_override,
    )


def compressed_to_color(msg: CompressedImage, max_pixels: int) -> ColorImage:
    """A jpeg/png CompressedImage decoded; the size limit is checked before decoding."""
    return decode_compressed(msg.data, msg.format, max_pixels)


def decode_image(
    msg: Image | CompressedImage, max_pixels: int, order_override: Optional[ColorOrder] = None
) -> ColorImage:
    """The colour image of either input message type; raises only ImageDecodeError.

    order_override applies to raw Images (a compressed frame's codec fixes its order).
    """
    if isinstance(msg, CompressedImage):
        return compressed_to_color(msg, max_pixels)
    return image_to_color(msg, max_pixels, order_override)


# rosidl_python from Jazzy on copies whatever a uint8[] field is given into a new array.array,
# unless the message checks its fields: a checked message stores an array.array('B') as it is,
# as Humble's messages always do. Messages made here are checked, so their data is the buffer
# given, not a copy of it (the 1920x1080 cloud: 33 MB, 3.5 ms a frame on this VM).
_STORES_ARRAYS_AS_IS = {"check_fields": True} if "_check_fields" in Image.__slots__ else {}


def new_message(msg_type):
    """An empty message of `msg_type` whose uint8[] field takes an array.array('B') uncopied."""
    return msg_type(**_STORES_ARRAYS_AS_IS)


def to_message_bytes(data: np.ndarray) -> array.array:
    """The message field type rclpy stores; filling it from the buffer costs one copy."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(data).data.cast("B"))
    return out


_ENCODABLE = {"32FC1": (np.float32, 2), "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3)}


def _image_header(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """An Image with every field but data set for `pixels`, which must match `encoding`."""
    if encoding not in _ENCODABLE:
        raise ValueError(f"cannot encode '{encoding}'; supported: {', '.join(_ENCODABLE)}")
    dtype, ndim = _ENCODABLE[encoding]
    if pixels.dtype != dtype or pixels.ndim != ndim or (ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(
            f"{encoding} needs a {dtype.__name__} array of ndim {ndim}, "
            f"got {pixels.dtype} {pixels.shape}"
        )
    msg = new_message(Image)
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = HOST_IS_BIGENDIAN and pixels.dtype.itemsize > 1
    msg.step = msg.width * pixels.dtype.itemsize * (pixels.shape[2] if ndim == 3 else 1)
    return msg


def array_to_image(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """An Image from an (H, W) float32 (32FC1) or (H, W, 3) uint8 (rgb8/bgr8) array (copied)."""
    msg = _image_header(pixels, encoding, header)
    msg.data = to_message_bytes(pixels)
    return msg


def image_message(buffer: HostBuffer, encoding: str, header: Header) -> Image:
    """An Image whose data IS the host buffer (no copy): the frame path's depth and preview."""
    msg = _image_header(buffer.array, encoding, header)
    msg.data = buffer.raw
    return msg


def depth_to_image(depth: np.ndarray, header: Header) -> Image:
    """32FC1 metres (REP 118), NaN where invalid."""
    return array_to_image(depth, "32FC1", header)
