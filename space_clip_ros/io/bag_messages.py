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
IMU = "sensor_msgs/msg/Imu"
NAV_SAT_FIX = "sensor_msgs/msg/NavSatFix"

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


def _vector3(values: np.ndarray) -> Any:
    x, y, z = (float(v) for v in values)
    return _T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def _quaternion(rotation: np.ndarray) -> Any:
    x, y, z, w = (float(v) for v in quaternion_from_matrix(rotation))
    return _T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)


def tf_message(parent_from_child: dict[tuple[str, str], np.ndarray], stamp_ns: int) -> Any:
    """TFMessage with one TransformStamped per (parent, child) -> 4x4 pose of child in parent.

    The same message serves /tf_static (once, latched) and /tf (one per pose sample).
    """
    transforms = [
        _T["geometry_msgs/msg/TransformStamped"](
            header=header(stamp_ns, parent),
            child_frame_id=child,
            transform=_T["geometry_msgs/msg/Transform"](
                translation=_vector3(matrix[:3, 3]), rotation=_quaternion(matrix[:3, :3])
            ),
        )
        for (parent, child), matrix in parent_from_child.items()
    ]
    return _T[TF_MESSAGE](transforms=transforms)


def imu(
    orientation: np.ndarray,
    angular_velocity: np.ndarray,
    linear_acceleration: np.ndarray,
    stamp_ns: int,
    frame_id: str,
) -> Any:
    """Imu from a 3x3 orientation (frame_id's axes in the world) and body-frame rates (rad/s)
    and accelerations (m/s^2, gravity included). Covariances are all zero: REP 145's "unknown"."""
    unknown = np.zeros(9)
    return _T[IMU](
        header=header(stamp_ns, frame_id),
        orientation=_quaternion(orientation),
        orientation_covariance=unknown,
        angular_velocity=_vector3(angular_velocity),
        angular_velocity_covariance=unknown,
        linear_acceleration=_vector3(linear_acceleration),
        linear_acceleration_covariance=unknown,
    )


def nav_sat_fix(
    lat_deg: float,
    lon_deg: float,
    alt_m: float,
    position_variance_m2: float,
    has_fix: bool,
    stamp_ns: int,
    frame_id: str,
) -> Any:
    """NavSatFix (GPS service) with an approximated diagonal covariance of one variance (m^2)
    for east, north and up."""
    status = _T["sensor_msgs/msg/NavSatStatus"]
    return _T[NAV_SAT_FIX](
        header=header(stamp_ns, frame_id),
        status=status(
            status=status.STATUS_FIX if has_fix else status.STATUS_NO_FIX,
            service=status.SERVICE_GPS,
        ),
        latitude=float(lat_deg),
        longitude=float(lon_deg),
        altitude=float(alt_m),
        position_covariance=np.diag([float(position_variance_m2)] * 3).reshape(-1),
        position_covariance_type=_T[NAV_SAT_FIX].COVARIANCE_TYPE_APPROXIMATED,
    )
