"""rosbags message objects built from numpy arrays (what the converter and the test bags write).

One typestore for everything: ROS 2 Humble's message definitions, which Humble, Jazzy and Kilted
all read (sensor_msgs, tf2_msgs and std_msgs did not change between them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.typesys import Stores, get_typestore

from space_clip_ros.evaluation.transforms import quaternion_from_matrix
from space_clip_ros.io.msg_arrays import FLOAT32

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
_T = TYPESTORE.types

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

_DEFAULT_TIME = QosTime(0, 0)  # rmw's "default" (no deadline / lifespan / lease)
# /tf_static is offered latched: `ros2 bag play` reads this profile back from the metadata and
# re-offers it, so late joiners (rviz2, the accuracy node) still receive the transform.
LATCHED_QOS = Qos(
    QosHistory.KEEP_LAST,
    1,
    QosReliability.RELIABLE,
    QosDurability.TRANSIENT_LOCAL,
    _DEFAULT_TIME,
    _DEFAULT_TIME,
    QosLiveliness.AUTOMATIC,
    _DEFAULT_TIME,
    False,
)


def serialize(msg: Any) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


def deserialize(data: bytes, msgtype: str) -> Any:
    return TYPESTORE.deserialize_cdr(data, msgtype)


def header(stamp_ns: int, frame_id: str) -> Any:
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return _T["std_msgs/msg/Header"](
        stamp=_T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def image(pixels: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """rgb8 for H x W x 3 uint8, 32FC1 (metres, REP 118) for H x W float32."""
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        encoding = "rgb8"
    elif pixels.ndim == 2 and pixels.dtype == np.float32:
        encoding = "32FC1"
    else:
        raise ValueError(f"expected HxWx3 uint8 or HxW float32, got {pixels.shape} {pixels.dtype}")
    data = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<"), copy=False)
    height, width = pixels.shape[:2]
    return _T[IMAGE](
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=data.nbytes // height,
        data=np.frombuffer(data.tobytes(), dtype=np.uint8),
    )


def camera_info(
    projection: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str
) -> Any:
    """CameraInfo of an already rectified image: K = P's left block, R = I, no distortion."""
    p = np.asarray(projection, dtype=np.float64).reshape(3, 4)
    return _T[CAMERA_INFO](
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=p[:, :3].reshape(-1).copy(),
        r=np.eye(3).reshape(-1),
        p=p.reshape(-1).copy(),
        binning_x=0,
        binning_y=0,
        roi=_T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def point_cloud(points: np.ndarray, names: tuple[str, ...], stamp_ns: int, frame_id: str) -> Any:
    """Unorganized cloud of float32 fields (N x len(names))."""
    data = np.ascontiguousarray(points, dtype="<f4")
    if data.ndim != 2 or data.shape[1] != len(names):
        raise ValueError(f"expected N x {len(names)} points for fields {names}, got {data.shape}")
    field = _T["sensor_msgs/msg/PointField"]
    step = 4 * len(names)
    return _T[POINT_CLOUD2](
        header=header(stamp_ns, frame_id),
        height=1,
        width=len(data),
        fields=[
            field(name=n, offset=4 * i, datatype=FLOAT32, count=1) for i, n in enumerate(names)
        ],
        is_bigendian=False,
        point_step=step,
        row_step=step * len(data),
        data=np.frombuffer(data.tobytes(), dtype=np.uint8),
        is_dense=bool(np.isfinite(data).all()),
    )


def static_transforms(parent_from_child: dict[tuple[str, str], np.ndarray], stamp_ns: int) -> Any:
    """TFMessage with one TransformStamped per (parent, child) -> 4x4 pose of child in parent."""
    vector, quaternion = _T["geometry_msgs/msg/Vector3"], _T["geometry_msgs/msg/Quaternion"]
    transforms = []
    for (parent, child), matrix in parent_from_child.items():
        x, y, z, w = quaternion_from_matrix(matrix[:3, :3])
        tx, ty, tz = (float(v) for v in matrix[:3, 3])
        transforms.append(
            _T["geometry_msgs/msg/TransformStamped"](
                header=header(stamp_ns, parent),
                child_frame_id=child,
                transform=_T["geometry_msgs/msg/Transform"](
                    translation=vector(x=tx, y=ty, z=tz), rotation=quaternion(x=x, y=y, z=z, w=w)
                ),
            )
        )
    return _T[TF_MESSAGE](transforms=transforms)
