"""sensor_msgs CameraInfo <-> geometry.Intrinsics, and CameraInfo for a resized depth image.

The projection matrix P is preferred over K, as depth_image_proc does: P describes the
rectified image, which is what a depth image derived from image_rect refers to, and it is what
downstream consumers of `depth/camera_info` read. K is the fallback for drivers that leave P zero.
"""

from __future__ import annotations

import copy

import numpy as np
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from space_clip_ros.errors import InputError
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.msg_arrays import camera_matrix


class CameraInfoError(InputError):
    """A CameraInfo cannot give intrinsics: zero size, or a focal length or principal point no
    camera has (geometry.Intrinsics bounds them, so fx = 1e-300 is refused here, counted by the
    node as a rejected camera_info, instead of becoming a cloud of inf)."""


def intrinsics_from_camera_info(msg: CameraInfo) -> Intrinsics:
    """Intrinsics from P (or K when P is all zero) at the message's width x height."""
    if msg.width <= 0 or msg.height <= 0:
        raise CameraInfoError(f"camera_info has zero size ({msg.width}x{msg.height})")
    matrix, name = camera_matrix(msg)
    try:
        return Intrinsics.from_matrix(matrix, msg.width, msg.height)
    except ValueError as exc:
        raise CameraInfoError(f"camera_info {name} is unusable: {exc}") from exc


def scale_camera_info(msg: CameraInfo, width: int, height: int, header: Header) -> CameraInfo:
    """The CameraInfo of the same camera for an image resized to width x height, stamped `header`.

    Focal lengths and principal points of K and P come from geometry.Intrinsics.scaled, the one
    implementation of the pixel-area convention the node's own back-projection uses, so the
    published camera info and the point cloud can never disagree. The remaining pixel-valued
    entries (skew, P's fx * Tx and fy * Ty) scale linearly with their row. Distortion and
    rectification stay as they are: they are defined in normalised coordinates. Binning and ROI
    are reset because they describe the full-resolution sensor readout that the resized image no
    longer corresponds to.
    """
    out = copy.deepcopy(msg)
    out.header = header
    if (int(width), int(height)) == (msg.width, msg.height):
        return out
    sx, sy = width / msg.width, height / msg.height
    for field in ("k", "p"):
        original = np.asarray(getattr(msg, field), dtype=np.float64).reshape(3, -1)
        try:
            scaled = Intrinsics.from_matrix(original, msg.width, msg.height).scaled(width, height)
        except ValueError:
            # unset (all zero) or unusable: left alone rather than given a bogus principal point
            continue
        m = original.copy()
        m[0, :] *= sx  # skew and fx * Tx; row 2, (0, 0, 1[, 0]), carries no pixels
        m[1, :] *= sy
        m[0, 0], m[1, 1], m[0, 2], m[1, 2] = scaled.fx, scaled.fy, scaled.cx, scaled.cy
        setattr(out, field, m.ravel())
    out.width, out.height = int(width), int(height)
    out.binning_x = out.binning_y = 0
    out.roi.x_offset = out.roi.y_offset = out.roi.width = out.roi.height = 0
    out.roi.do_rectify = False
    return out


def camera_info_from_intrinsics(intr: Intrinsics, header: Header) -> CameraInfo:
    """A CameraInfo for an ideal rectified pinhole camera (no distortion, P = [K | 0])."""
    msg = CameraInfo(
        header=header, width=intr.width, height=intr.height, distortion_model="plumb_bob"
    )
    msg.k = intr.matrix.ravel().tolist()
    msg.p = np.hstack([intr.matrix, np.zeros((3, 1))]).ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    msg.d = [0.0] * 5
    return msg
