"""Rigid transforms as 4x4 matrices <-> ROS geometry_msgs/Transform, and static-tf lookups.

Duck-typed on message attributes, so the same code serves rosbags' message objects (offline)
and rclpy's (live) without importing ROS.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

import numpy as np


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of the rotation nearest to a 3x3 matrix (KITTI's are orthonormal to ~1e-6)."""
    u, _, vt = np.linalg.svd(np.asarray(rotation, dtype=np.float64))
    r = u @ vt
    if np.linalg.det(r) < 0:
        raise ValueError("rotation matrix is a reflection (determinant < 0)")
    # Shepperd's method: pick the largest of w, x, y, z to divide by, for numerical stability.
    trace = np.trace(r)
    candidates = [trace, r[0, 0], r[1, 1], r[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4, (r[1, 0] - r[0, 1]) / s]
    q = np.array(q)
    return q / np.linalg.norm(q)


def matrix_from_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"quaternion {q.tolist()} has no direction")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_from_transform(transform: Any) -> np.ndarray:
    """4x4 from a geometry_msgs/Transform (translation + rotation quaternion)."""
    t, q = transform.translation, transform.rotation
    m = np.eye(4)
    m[:3, :3] = matrix_from_quaternion(q.x, q.y, q.z, q.w)
    m[:3, 3] = [t.x, t.y, t.z]
    return m


def invert(transform: np.ndarray) -> np.ndarray:
    inv = np.eye(4)
    inv[:3, :3] = transform[:3, :3].T
    inv[:3, 3] = -transform[:3, :3].T @ transform[:3, 3]
    return inv


def _frame(name: str) -> str:
    return name.lstrip("/")


def lookup_static(transforms: Iterable[Any], target: str, source: str) -> np.ndarray:
    """4x4 taking points from frame `source` into frame `target`, chaining TransformStamped edges.

    A TransformStamped with header.frame_id P and child_frame_id C holds C's pose in P, i.e. the
    map from C coordinates to P coordinates; edges are walked in either direction.
    """
    edges: dict[str, list[tuple[str, np.ndarray]]] = {}
    for stamped in transforms:
        parent, child = _frame(stamped.header.frame_id), _frame(stamped.child_frame_id)
        parent_from_child = matrix_from_transform(stamped.transform)
        edges.setdefault(child, []).append((parent, parent_from_child))
        edges.setdefault(parent, []).append((child, invert(parent_from_child)))
    target, source = _frame(target), _frame(source)
    # Breadth-first search from source; each path entry maps source coordinates into that frame.
    reached = {source: np.eye(4)}
    queue = deque([source])
    while queue:
        frame = queue.popleft()
        if frame == target:
            return reached[frame]
        for neighbour, neighbour_from_frame in edges.get(frame, []):
            if neighbour not in reached:
                reached[neighbour] = neighbour_from_frame @ reached[frame]
                queue.append(neighbour)
    raise LookupError(
        f"no static transform connects {source!r} to {target!r} (known frames: {sorted(edges)}); "
        "give the KITTI calibration folder instead"
    )
