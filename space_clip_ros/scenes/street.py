"""A procedurally rendered driving sequence with EXACT ground-truth depth: the built-in default.

When no camera, dataset or weights are present, the demo, the CLI and the tests still need
something meaningful to run on. This module ray-casts a simple street scene (road with lane
markings, pavements and grass, parked cars, a lead car, street-light poles, buildings, sky)
through a pinhole camera with KITTI-like intrinsics mounted 1.65 m above the road, all in
vectorised numpy: no binary assets, no ROS, no torch, the same output on every machine.

Conventions (the ones the rest of the package uses):
- Camera frame: REP 103 optical frame, x right, y down, z forward, metres.
- World frame: the camera's optical frame of frame 0 (so the pose of frame 0 is the identity).
  The road is the plane y = camera_height; the camera drives along +z at constant speed.
- depth is z-depth (along the optical axis, what a depth image holds), not ray length.
- Sky (no surface hit) has depth 0, the KITTI "no measurement" value, so the synthetic ground
  truth drops into the same masks (metrics.valid_mask) as real LiDAR ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator, Optional

import numpy as np

from space_clip_ros.geometry import Intrinsics, backproject

# KITTI raw, 2011_09_26, rectified left colour camera (P_rect_02) at full resolution.
KITTI_INTRINSICS = Intrinsics(
    fx=721.5377, fy=721.5377, cx=609.5593, cy=172.854, width=1242, height=375
)
KITTI_CAMERA_HEIGHT = 1.65  # metres above the road (KITTI's camera mounting height)

# Road layout across x (metres from the camera's lane centre): three 3.5 m lanes, pavements, grass.
LANE_WIDTH = 3.5
ROAD_HALF_WIDTH = 1.5 * LANE_WIDTH
PAVEMENT_WIDTH = 2.5
SEGMENT_LENGTH = 30.0  # the scene is generated in independent 30 m chunks along the road

_EPS = 1e-4
_SUN = np.array([-0.45, -1.0, -0.55]) / np.linalg.norm([-0.45, -1.0, -0.55])  # towards the light
_SKY_HORIZON = np.array([0.80, 0.86, 0.92])
_SKY_ZENITH = np.array([0.33, 0.52, 0.84])
_HAZE_DISTANCE = 300.0  # metres at which 63 % of a surface's colour has faded into the horizon


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in the world frame; lo/hi are opposite corners (lo < hi per axis).

    facade=True draws a grid of windows on the vertical faces (buildings).
    """

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    color: tuple[float, float, float]
    facade: bool = False


@dataclass(frozen=True)
class Cylinder:
    """A vertical cylinder standing on the road plane (a pole); top is its world y (y is down).

    No caps are drawn: poles are taller than the camera, so their tops are never seen from it.
    """

    x: float
    z: float
    radius: float
    top: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    """Everything the renderer draws besides the sky: the textured road plane plus primitives."""

    boxes: tuple[Box, ...] = ()
    cylinders: tuple[Cylinder, ...] = ()
    ground_y: float = KITTI_CAMERA_HEIGHT
    texture_seed: int = 0


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered frame; depth is float32 z-depth in metres with 0 = sky (no measurement)."""

    index: int
    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    pose: np.ndarray  # 4x4 T_world_camera


@dataclass(frozen=True)
class DriveConfig:
    """The synthetic drive: image size, seed, motion and what the street contains.

    The intrinsics are KITTI's, scaled to width x height, so a small test image sees the same
    scene through the same field of view as the full 1242x375 frame.
    """

    width: int = KITTI_INTRINSICS.width
    height: int = KITTI_INTRINSICS.height
    seed: int = 0
    speed_mps: float = 10.0
    rate_hz: float = 10.0
    camera_height: float = KITTI_CAMERA_HEIGHT
    # 2011-09-26 13:02:25 UTC, the date of KITTI's city drives; 0 is avoided because ROS tools
    # treat a zero stamp as "no stamp".
    start_stamp_ns: int = 1_317_042_145_000_000_000
    # A car driving ahead in the camera's lane at the camera's speed, its rear face this many
    # metres ahead (z-depth) in every frame; None for an open lane.
    lead_vehicle_gap: Optional[float] = 18.0
    view_distance: float = 150.0

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(
                f"DriveConfig: image must be at least 8x8, got {self.width}x{self.height}"
            )
        if not (
            self.speed_mps >= 0
            and self.rate_hz > 0
            and self.camera_height > 0
            and self.view_distance > 0
        ):
            raise ValueError(
                "DriveConfig: speed_mps must be >= 0 and rate_hz, camera_height, view_distance "
                "> 0; got "
                f"{self.speed_mps}, {self.rate_hz}, {self.camera_height}, {self.view_distance}"
            )
        if self.lead_vehicle_gap is not None and self.lead_vehicle_gap <= 1.0:
            raise ValueError(
                f"DriveConfig: lead_vehicle_gap must be > 1 m or None, got {self.lead_vehicle_gap}"
            )


# --------------------------------------------------------------------------------------------
# Rendering


def render(
    scene: Scene, intrinsics: Intrinsics, pose: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast scene through the camera at pose (4x4 T_world_camera) -> (rgb uint8, depth f32).

    Rays are parametrised as origin + t * (x/z, y/z, 1) in the camera frame, so the hit
    parameter t IS the z-depth: no conversion from ray length, hence exact ground truth.
    """
    rotation, origin = _split_pose(pose)
    # Back-projecting unit depth gives the per-pixel ray (x/z, y/z, 1): reuse the cached grid.
    rays_cam = backproject(np.ones((intrinsics.height, intrinsics.width), np.float32), intrinsics)
    rays = (rays_cam @ rotation.T.astype(np.float32)).astype(np.float32)  # world axes

    def window(lo: np.ndarray, hi: np.ndarray) -> Optional[tuple[slice, slice]]:
        return _screen_window(lo, hi, rotation, intrinsics)

    hit = cast_rays(scene, rays, origin, window)
    return _shade(hit, rays), hit.depth()


# A grid window: which (rows, cols) of the ray grid can hit the camera-centred box [lo, hi].
# None means no ray can; the whole grid is (slice(None), slice(None)).
RayWindow = Callable[[np.ndarray, np.ndarray], Optional[tuple[slice, slice]]]


def _whole_grid(lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice]:
    return slice(None), slice(None)


def _split_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"pose must be a 4x4 T_world_sensor matrix, got shape {pose.shape}")
    return pose[:3, :3], pose[:3, 3]


def cast_rays(
    scene: Scene, rays: np.ndarray, origin: np.ndarray, window: RayWindow = _whole_grid
) -> SurfaceHits:
    """Nearest surface along each ray of a (rows, cols, 3) world-axes grid from one origin.

    The one intersection routine behind the camera (render) and the LiDAR (scenes.lidar), so
    both sensors see the same geometry. A hit's t is in units of its ray's length: z-depth for
    camera rays (x/z, y/z, 1), range for unit LiDAR rays. `window` limits each primitive to the
    part of the grid that can see it, which is what makes a hundred objects cheap.
    """
    rays = np.asarray(rays, np.float32)
    origin = np.asarray(origin, np.float64)
    hit = SurfaceHits(rays.shape[0], rays.shape[1])
    _hit_ground(hit, rays, origin, scene)
    for box in scene.boxes:
        _hit_box(hit, rays, origin, window, box)
    for cylinder in scene.cylinders:
        _hit_cylinder(hit, rays, origin, window, cylinder, scene.ground_y)
    return hit


class SurfaceHits:
    """Nearest hit so far per ray: ray parameter (inf = miss), surface normal and albedo."""

    def __init__(self, rows: int, cols: int) -> None:
        self.t = np.full((rows, cols), np.inf, np.float32)
        self.normal = np.zeros((rows, cols, 3), np.float32)
        self.albedo = np.zeros((rows, cols, 3), np.float32)

    def depth(self) -> np.ndarray:
        """t with misses (sky) as 0, the KITTI 'no measurement' value."""
        return np.where(np.isfinite(self.t), self.t, 0.0).astype(np.float32)

    def update(
        self, rows: slice, cols: slice, t: np.ndarray, normal: np.ndarray, albedo: np.ndarray
    ) -> None:
        """Keep the candidate hits (NaN/inf = miss) that are nearer than what is already there."""
        current = self.t[rows, cols]
        closer = np.isfinite(t) & (t > _EPS) & (t < current)
        current[closer] = t[closer]
        self.normal[rows, cols][closer] = normal[closer] if normal.ndim == 3 else normal
        self.albedo[rows, cols][closer] = albedo[closer] if albedo.ndim == 3 else albedo


def _hit_ground(hit: SurfaceHits, rays: np.ndarray, origin: np.ndarray, scene: Scene) -> None:
    dy = rays[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dy > 0, np.float32(scene.ground_y - origin[1]) / dy, np.inf)
    t = t.astype(np.float32)
    finite = np.isfinite(t)
    x = np.where(finite, origin[0] + t * rays[..., 0], 0.0)
    z = np.where(finite, origin[2] + t * rays[..., 2], 0.0)
    up = np.array([0.0, -1.0, 0.0], np.float32)
    hit.update(slice(None), slice(None), t, up, _ground_albedo(x, z, scene.texture_seed))


def _hit_box(
    hit: SurfaceHits, rays: np.ndarray, origin: np.ndarray, window: RayWindow, box: Box
) -> None:
    # Camera-centred: float32 stays exact far from the world origin.
    lo = np.asarray(box.lo, np.float64) - origin
    hi = np.asarray(box.hi, np.float64) - origin
    grid = window(lo, hi)
    if grid is None:
        return
    rows, cols = grid
    d = rays[rows, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.float32(1.0) / d
        t1 = lo.astype(np.float32) * inv
        t2 = hi.astype(np.float32) * inv
    t_enter = np.minimum(t1, t2)
    t_near = t_enter.max(axis=-1)
    t_far = np.maximum(t1, t2).min(axis=-1)
    # A sensor inside a box sees nothing of it.
    t = np.where((t_near <= t_far) & (t_near > _EPS), t_near, np.inf)
    axis = t_enter.argmax(axis=-1)
    normal = np.zeros(d.shape, np.float32)
    np.put_along_axis(
        normal, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), axis=-1
    )
    albedo = np.broadcast_to(np.asarray(box.color, np.float32), d.shape)
    if box.facade:
        points = origin + np.where(np.isfinite(t), t, 0.0)[..., None] * d
        albedo = _facade_albedo(points, axis, albedo)
    hit.update(rows, cols, t, normal, albedo)


def _hit_cylinder(
    hit: SurfaceHits,
    rays: np.ndarray,
    origin: np.ndarray,
    window: RayWindow,
    cyl: Cylinder,
    ground_y: float,
) -> None:
    lo = np.array([cyl.x - cyl.radius, cyl.top, cyl.z - cyl.radius]) - origin
    hi = np.array([cyl.x + cyl.radius, ground_y, cyl.z + cyl.radius]) - origin
    grid = window(lo, hi)
    if grid is None:
        return
    rows, cols = grid
    d = rays[rows, cols]
    # The sensor's position relative to the cylinder's axis.
    ox, oz = np.float32(-(lo[0] + cyl.radius)), np.float32(-(lo[2] + cyl.radius))
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = 2.0 * (ox * d[..., 0] + oz * d[..., 2])
    c = ox * ox + oz * oz - np.float32(cyl.radius) ** 2
    disc = b * b - 4.0 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2.0 * a)
    y = t * d[..., 1]
    t = np.where((disc >= 0) & (y >= lo[1]) & (y <= hi[1]), t, np.inf).astype(np.float32)
    normal = np.stack(
        [ox + t * d[..., 0], np.zeros_like(t), oz + t * d[..., 2]], axis=-1
    ) / np.float32(cyl.radius)
    hit.update(rows, cols, t, normal, np.asarray(cyl.color, np.float32))


def _screen_window(
    lo: np.ndarray, hi: np.ndarray, rotation: np.ndarray, intr: Intrinsics
) -> Optional[tuple[slice, slice]]:
    """Pixel rectangle that can see the camera-centred world box [lo, hi], or None if none can.

    Ray-testing only that rectangle is what makes a hundred objects cheap. The box is clipped
    to the half-space in front of the camera (corners in front plus the points where its 12
    edges cross the near plane); the clipped solid is convex, so the bounding rectangle of its
    projected vertices bounds its image.
    """
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    cam = corners @ rotation  # world -> camera: R^T p, row-vector form
    near = 1e-3
    points = [cam[cam[:, 2] > near]]
    for i in range(8):
        for j in range(i + 1, 8):
            if bin(i ^ j).count("1") != 1:
                continue  # not an edge
            zi, zj = cam[i, 2], cam[j, 2]
            if (zi - near) * (zj - near) < 0:
                s = (near - zi) / (zj - zi)
                points.append((cam[i] + s * (cam[j] - cam[i]))[None])
    front = np.concatenate(points)
    if len(front) == 0:
        return None
    u = intr.fx * front[:, 0] / front[:, 2] + intr.cx
    v = intr.fy * front[:, 1] / front[:, 2] + intr.cy
    c0, c1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, intr.width)
    r0, r1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, intr.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _shade(hit: SurfaceHits, rays: np.ndarray) -> np.ndarray:
    """Lambertian sun + ambient light, distance haze, and a vertical sky gradient for misses."""
    lambert = np.clip(hit.normal @ _SUN.astype(np.float32), 0.0, 1.0)
    color = hit.albedo * (0.45 + 0.65 * lambert)[..., None]
    finite = np.isfinite(hit.t)
    haze = np.where(finite, 1.0 - np.exp(-np.where(finite, hit.t, 0.0) / _HAZE_DISTANCE), 1.0)[
        ..., None
    ]
    elevation = -rays[..., 1] / np.linalg.norm(rays, axis=-1)
    sky = (
        _SKY_HORIZON + (_SKY_ZENITH - _SKY_HORIZON) * np.clip(elevation * 2.5, 0.0, 1.0)[..., None]
    )
    color = color * (1.0 - haze) + np.where(finite[..., None], _SKY_HORIZON, sky) * haze
    return np.clip(np.rint(color * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Procedural textures (functions of world position, so surfaces stay put as the camera moves)


def _hash01(ix: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer lattice point."""
    h = ix.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B1)
    h ^= iz.astype(np.int64).astype(np.uint64) * np.uint64(0x85EBCA77)
    h ^= np.uint64((seed * 0xC2B2AE3D) & 0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h *= np.uint64(0x2C1B3C6D)
    h ^= h >> np.uint64(12)
    return ((h & np.uint64(0xFFFFFF)).astype(np.float32)) / np.float32(1 << 24)


def _value_noise(x: np.ndarray, z: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1) with features about `scale` metres across."""
    xs, zs = x / scale, z / scale
    x0, z0 = np.floor(xs), np.floor(zs)
    fx, fz = xs - x0, zs - z0
    fx, fz = fx * fx * (3 - 2 * fx), fz * fz * (3 - 2 * fz)
    n00, n10 = _hash01(x0, z0, seed), _hash01(x0 + 1, z0, seed)
    n01, n11 = _hash01(x0, z0 + 1, seed), _hash01(x0 + 1, z0 + 1, seed)
    return ((n00 * (1 - fx) + n10 * fx) * (1 - fz) + (n01 * (1 - fx) + n11 * fx) * fz).astype(
        np.float32
    )


def _ground_albedo(x: np.ndarray, z: np.ndarray, seed: int) -> np.ndarray:
    """Asphalt with dashed lane lines and solid edge lines, concrete pavements, then grass."""
    fine = _value_noise(x, z, 0.35, seed)
    coarse = _value_noise(x, z, 4.0, seed + 1)
    ax = np.abs(x)
    asphalt = (0.25 + 0.08 * fine + 0.05 * coarse)[..., None] * np.array(
        [1.0, 1.0, 1.02], np.float32
    )
    tiles = ((np.mod(x, 1.2) < 0.04) | (np.mod(z, 1.2) < 0.04))[..., None]
    concrete = np.where(tiles, 0.45, (0.62 + 0.08 * fine)[..., None]) * np.array(
        [1.0, 0.98, 0.94], np.float32
    )
    grass = np.stack([0.20 + 0.10 * coarse, 0.38 + 0.15 * fine, 0.12 + 0.05 * coarse], axis=-1)
    beside_road = np.where((ax < ROAD_HALF_WIDTH + PAVEMENT_WIDTH)[..., None], concrete, grass)
    albedo = np.where((ax < ROAD_HALF_WIDTH)[..., None], asphalt, beside_road)
    dashed = (np.abs(ax - LANE_WIDTH / 2) < 0.075) & (np.mod(z, 12.0) < 4.0)
    edge = np.abs(ax - (ROAD_HALF_WIDTH - 0.3)) < 0.1
    albedo[dashed | edge] = 0.9
    return albedo.astype(np.float32)


def _facade_albedo(points: np.ndarray, face_axis: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """Windows in a 2.5 m x 3 m grid on the vertical faces; roofs (y faces) stay plain."""
    along = np.where(face_axis == 0, points[..., 2], points[..., 0])
    height = points[..., 1]
    window = (
        (face_axis != 1)
        & (np.mod(along, 2.5) > 0.6)
        & (np.mod(along, 2.5) < 1.9)
        & (np.mod(height, 3.0) > 0.8)
        & (np.mod(height, 3.0) < 2.3)
    )
    return np.where(window[..., None], np.array([0.16, 0.2, 0.26], np.float32), wall).astype(
        np.float32
    )


# --------------------------------------------------------------------------------------------
# The street, generated segment by segment from the seed

_CAR_COLORS = (
    (0.70, 0.08, 0.07),
    (0.10, 0.20, 0.55),
    (0.85, 0.85, 0.83),
    (0.55, 0.56, 0.58),
    (0.06, 0.06, 0.07),
    (0.85, 0.65, 0.10),
    (0.15, 0.35, 0.20),
    (0.45, 0.25, 0.15),
)
_WALL_COLORS = (
    (0.72, 0.62, 0.48),
    (0.55, 0.30, 0.22),
    (0.62, 0.62, 0.60),
    (0.80, 0.76, 0.66),
    (0.45, 0.47, 0.50),
)
_POLE_COLOR = (0.35, 0.36, 0.38)


def car(
    x: float, z_rear: float, ground_y: float, color: tuple[float, float, float]
) -> tuple[Box, ...]:
    """A 1.8 m x 1.5 m x 4.2 m car as three boxes (wheels/underbody, body, cabin), rear at z_rear.

    Three boxes are enough for a depth network: a dark underbody between the wheels, the body and
    a dark cabin.
    """
    g = ground_y
    return (
        Box((x - 0.8, g - 0.3, z_rear + 0.5), (x + 0.8, g, z_rear + 3.7), (0.05, 0.05, 0.05)),
        Box((x - 0.9, g - 1.0, z_rear), (x + 0.9, g - 0.3, z_rear + 4.2), color),
        Box(
            (x - 0.75, g - 1.5, z_rear + 1.2), (x + 0.75, g - 1.0, z_rear + 3.2), (0.18, 0.2, 0.24)
        ),
    )


@lru_cache(maxsize=64)
def _segment(
    seed: int, index: int, ground_y: float
) -> tuple[tuple[Box, ...], tuple[Cylinder, ...]]:
    """The static objects of road segment [index * L, (index + 1) * L), a pure function of inputs.

    Cached: consecutive frames and the LiDAR of the same frame reuse the same segments.
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, index + (1 << 31)])
    z0 = index * SEGMENT_LENGTH
    z1 = z0 + SEGMENT_LENGTH
    boxes: list[Box] = []
    for side in (-1.0, 1.0):
        z = z0 + rng.uniform(0.0, 4.0)
        while z < z1 - 4.0:  # buildings set back behind the pavement
            length = min(rng.uniform(8.0, 20.0), z1 - z)
            inner = ROAD_HALF_WIDTH + PAVEMENT_WIDTH + rng.uniform(0.5, 6.0)
            x_lo, x_hi = (inner, inner + 12.0) if side > 0 else (-inner - 12.0, -inner)
            height = rng.uniform(5.0, 18.0)
            color = _WALL_COLORS[rng.integers(len(_WALL_COLORS))]
            boxes.append(
                Box((x_lo, ground_y - height, z), (x_hi, ground_y, z + length), color, facade=True)
            )
            z += length + rng.uniform(1.0, 6.0)
        for slot in np.arange(z0, z1, 6.0):  # parked or waiting cars in the outer lanes
            if rng.random() < 0.45:
                x = side * (LANE_WIDTH + rng.uniform(-0.3, 0.6))
                color = _CAR_COLORS[rng.integers(len(_CAR_COLORS))]
                boxes.extend(car(x, slot + rng.uniform(0.0, 1.5), ground_y, color))
    poles = [
        Cylinder(side * (ROAD_HALF_WIDTH + 0.6), float(z), 0.12, ground_y - 7.0, _POLE_COLOR)
        for side in (-1.0, 1.0)
        for z in np.arange(z0 + rng.uniform(0.0, 15.0), z1, 15.0)
    ]
    return tuple(boxes), tuple(poles)


class SyntheticDrive:
    """A camera driving down an endless procedural street; frame i is a pure function of config, i.

    Frames can be requested in any order (random access), which is what tests and the demo need.
    """

    def __init__(self, config: DriveConfig = DriveConfig()) -> None:
        self.config = config
        self.intrinsics = KITTI_INTRINSICS.scaled(config.width, config.height)

    def pose(self, index: int) -> np.ndarray:
        """T_world_camera of frame index: straight ahead along +z, no rotation."""
        pose = np.eye(4)
        pose[2, 3] = index * self.config.speed_mps / self.config.rate_hz
        return pose

    def stamp_ns(self, index: int) -> int:
        return self.config.start_stamp_ns + int(round(index * 1e9 / self.config.rate_hz))

    def scene(self, index: int, behind: float = 10.0) -> Scene:
        """The objects from `behind` metres behind frame index's camera to the view distance ahead.

        The camera needs a little behind it (wide-angle edges); a 360-degree LiDAR needs its
        range behind it.
        """
        cfg = self.config
        cam_z = self.pose(index)[2, 3]
        ground_y = cfg.camera_height
        first = int(np.floor((cam_z - behind) / SEGMENT_LENGTH))
        last = int(np.floor((cam_z + cfg.view_distance) / SEGMENT_LENGTH))
        boxes: list[Box] = []
        cylinders: list[Cylinder] = []
        for k in range(first, last + 1):
            seg_boxes, seg_poles = _segment(cfg.seed, k, ground_y)
            boxes.extend(seg_boxes)
            cylinders.extend(seg_poles)
        if cfg.lead_vehicle_gap is not None:
            lead_color = _CAR_COLORS[cfg.seed % len(_CAR_COLORS)]
            boxes.extend(car(0.0, cam_z + cfg.lead_vehicle_gap, ground_y, lead_color))
        return Scene(tuple(boxes), tuple(cylinders), ground_y=ground_y, texture_seed=cfg.seed)

    def frame(self, index: int) -> SyntheticFrame:
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        pose = self.pose(index)
        rgb, depth = render(self.scene(index), self.intrinsics, pose)
        return SyntheticFrame(index, self.stamp_ns(index), rgb, depth, self.intrinsics, pose)

    def frames(self, count: int, start: int = 0) -> Iterator[SyntheticFrame]:
        for index in range(start, start + count):
            yield self.frame(index)
