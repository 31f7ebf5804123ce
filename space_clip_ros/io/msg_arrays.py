"""sensor_msgs Image / PointCloud2 / CameraInfo contents and header stamps, read by attribute name.

Duck-typed, so it reads rosbags' deserialized messages in the offline KITTI tools and rclpy
messages in the nodes, the demo and the tests alike, without importing ROS here: the one decoder
of depth images and clouds that consumers use (the node's own input path is ros/image_codec).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# sensor_msgs/PointField datatype constants -> numpy scalar types.
POINT_FIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
FLOAT32 = 7

# Depth encodings of REP 118 (32FC1 metres) and the common 16UC1 millimetre convention.
_DEPTH_SCALE = {
    "32FC1": ("f4", 1.0),
    "64FC1": ("f8", 1.0),
    "16UC1": ("u2", 1e-3),
    "mono16": ("u2", 1e-3),
}


def stamp_ns(msg: Any) -> int:
    """A message's header stamp as integer nanoseconds (the key pairing and replay wait on)."""
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _buffer(data: Any) -> np.ndarray:
    """Bytes of a uint8[] field: rclpy's array.array('B') or rosbags' numpy array."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def depth_image_to_metres(msg: Any) -> np.ndarray:
    """H x W float32 metres; 0 in a 16UC1 image (no measurement) becomes NaN."""
    if msg.encoding not in _DEPTH_SCALE:
        raise ValueError(
            f"depth image encoding {msg.encoding!r} is not one of {sorted(_DEPTH_SCALE)}"
        )
    kind, scale = _DEPTH_SCALE[msg.encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    row = np.dtype(dtype).itemsize * msg.width
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ValueError(
            f"depth image {msg.width}x{msg.height} step {msg.step} holds only {len(msg.data)} "
            "bytes"
        )
    rows = _buffer(msg.data)[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row]
    depth = (
        np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width).astype(np.float32)
    )
    if scale != 1.0:
        depth = np.where(depth > 0, depth * np.float32(scale), np.float32(np.nan))
    return depth


def pointcloud2_to_array(msg: Any, names: tuple[str, ...] = ("x", "y", "z")) -> np.ndarray:
    """N x len(names) float32 of the named fields, N = width * height (organized: flattened)."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in names if n not in fields]
    if missing:
        raise ValueError(f"point cloud has no field(s) {missing}; it has {sorted(fields)}")
    unknown = {
        n: fields[n].datatype for n in names if fields[n].datatype not in POINT_FIELD_DTYPES
    }
    if unknown:
        raise ValueError(
            f"point cloud field(s) {unknown} have an unknown PointField datatype (expected 1..8)"
        )
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype(
        {
            "names": list(names),
            "formats": [order + POINT_FIELD_DTYPES[fields[n].datatype] for n in names],
            "offsets": [fields[n].offset for n in names],
            "itemsize": msg.point_step,
        }
    )
    count = msg.width * msg.height
    rows = _buffer(msg.data)
    if msg.height > 1 and msg.row_step != msg.width * msg.point_step:
        rows = rows[: msg.row_step * msg.height].reshape(msg.height, msg.row_step)[
            :, : msg.width * msg.point_step
        ]
    points = np.frombuffer(
        np.ascontiguousarray(rows).reshape(-1)[: count * msg.point_step], dtype=dtype, count=count
    )
    return np.stack([points[n].astype(np.float32) for n in names], axis=1)


def camera_matrix(msg: Any) -> tuple[np.ndarray, str]:
    """The matrix to read a sensor_msgs/CameraInfo's intrinsics from, and its name: the 3x4
    projection P when set, else [K | 0].

    P describes the rectified image, which is what a depth image derived from image_rect refers
    to and what downstream consumers of depth/camera_info read (depth_image_proc does the same);
    K is the fallback for drivers that leave P all zero.
    """
    p = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
    if np.any(p):
        return p, "P"
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    return np.hstack([k, np.zeros((3, 1))]), "K"
