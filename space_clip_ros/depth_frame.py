"""One camera frame in, every output of that frame out: the frame path the node runs (no ROS).

The node takes a `FramePlan` once per frame (which outputs, the settings, the camera) and hands
the decoded image to a `FrameRenderer`; what comes back is a `FrameProducts` with the depth
image, the point cloud in PointCloud2's byte layout and the colour preview, in reusable host
buffers the ROS layer wraps into messages without another copy. The decisions made here:

- output size: `output_scale` < 1 gives a depth image at that fraction of the input (the model
  resizes to its encoder input anyway, so inference reads the full-resolution frame);
- range mask: depth outside [min_depth, max_depth] (or not positive, or not finite) becomes
  NaN, never 0, as REP 118 and depth_image_proc expect for "no measurement";
- intrinsics: P (the rectified camera) when the CameraInfo sets it, else K, scaled to the
  output size with the pixel-area convention of geometry.Intrinsics.scaled;
- finiteness: the fraction of finite model output is measured on every frame, so a model that
  produces NaN is reported (/diagnostics ERROR), never published as if it were depth.

Where post-processing runs: where the depth already is. On a GPU the forward takes a few
milliseconds and the node's own Python post-processing used to cost several times that, so the
range mask, the back-projection (x, y, z and the packed colour written straight into
PointCloud2's layout) and the preview's palette lookup run there as torch ops (`DeviceKernels`),
followed by one device-to-host copy per output through pinned memory. On the CPU the same rules
run as OpenCV and numpy passes that write straight into the message buffers (`HostKernels`):
torch's CPU ops would wake its OpenMP workers for every elementwise op (measured: 10x slower
for the range mask on a busy 2-core machine), and OpenCV's single passes need no temporaries the
size of the frame. The two kernel sets implement one rule each; the tests hold them together.

The work is split in two halves so the node can pipeline frames: `begin` (upload, inference
and, on CUDA, the device post-processing and the asynchronous copies) and `complete` (wait for
the device; on the CPU the post-processing itself). `render` is both in one call.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from space_clip_ros.frame_plan import FramePlan, FrameSettings, Output
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.colormap import (
    INVALID_INDEX,
    LARGEST_FLOAT32,
    PALETTE_LEVELS,
    SMALLEST_POSITIVE,
    apply_palette,
    index_scale,
    palette_index,
    preview_lut,
)
from space_clip_ros.io.host_buffer import HostBuffer
from space_clip_ros.io.image_decoding import ColorImage
from space_clip_ros.model.config import CameraConfig

if TYPE_CHECKING:
    from space_clip_ros.inference.estimator import DepthEstimator


def rescaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of the depth image for an input of width x height; at least 1x1."""
    if scale >= 1.0:
        return int(width), int(height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def camera_source(record: Optional[CameraConfig], plan: FramePlan) -> str:
    """Which camera a frame's depth was made metric for, in words (for /diagnostics)."""
    if record is None:
        return "not mapped: the checkpoint records no training camera"
    if plan.camera is not None:
        return "camera_info"
    if plan.assumed_camera is not None:
        return f"assumed: default_focal_length {plan.assumed_camera.fx:g} px"
    return f"assumed: the training camera's focal length ({record.focal[0]:g} px)"


def output_intrinsics(camera: Intrinsics, width: int, height: int) -> Intrinsics:
    """The camera's intrinsics for a depth image of width x height (itself at the same size)."""
    if (int(width), int(height)) == (camera.width, camera.height):
        return camera
    return camera.scaled(width, height)


@dataclass
class FrameProducts:
    """Every output of one frame, in the renderer's host buffers (valid until its next frame).

    width/height: the depth image's size; intrinsics: the camera at that size (None without a
    camera); depth: (h, w) float32 metres, NaN = invalid; points: (h', w', 3 or 4) float32
    x y z [rgb], the PointCloud2 layout (rgb: 0x00RRGGBB bits); preview: (h, w, 3) uint8 BGR;
    finite_fraction: share of finite values in the model's raw output (NaN: no inference ran).
    """

    width: int
    height: int
    intrinsics: Optional[Intrinsics]
    depth: Optional[HostBuffer] = None
    points: Optional[HostBuffer] = None
    preview: Optional[HostBuffer] = None
    finite_fraction: float = float("nan")
    camera_warning: Optional[str] = None  # the depth mapping assumed the input camera
    camera_source: str = ""  # the camera the depth was mapped to, in words (camera_source)

    @property
    def points_have_rgb(self) -> bool:
        return self.points is not None and self.points.array.shape[-1] == 4


@dataclass
class PendingFrame:
    """A frame between `begin` and `complete`. CPU: the raw depth and the input pixels, for
    complete() to post-process. GPU: the outputs' pinned host copies, in flight until `done`."""

    plan: FramePlan
    width: int
    height: int
    intrinsics: Optional[Intrinsics]
    order: str = "rgb"
    stream: str = ""  # whose host buffers complete() fills (one set per camera)
    camera_warning: Optional[str] = None  # the depth mapping assumed a camera (view_plan)
    camera_source: str = ""  # which camera the depth was mapped to (camera_source)
    pixels: Optional[np.ndarray] = None  # CPU: (H, W, 3) uint8, input size
    depth: Optional[np.ndarray] = None  # CPU: (h, w) float32 metres, unmasked, output size
    staged: Optional[dict[str, torch.Tensor]] = None  # GPU: pinned host copies in flight
    done: Optional[torch.cuda.Event] = None


@dataclass(frozen=True)
class _Rays:
    """Per column (u - cx) / fx and per row (v - cy) / fy of a (decimated) pixel grid: the same
    grid as geometry.backproject."""

    u: np.ndarray  # (1, w') float32
    v: np.ndarray  # (h', 1) float32


@lru_cache(maxsize=16)
def _rays(intr: Intrinsics, step: int) -> _Rays:
    """Cached: the camera rarely changes."""
    u = (np.arange(0, intr.width, step, dtype=np.float32) - np.float32(intr.cx)) / np.float32(
        intr.fx
    )
    v = (np.arange(0, intr.height, step, dtype=np.float32) - np.float32(intr.cy)) / np.float32(
        intr.fy
    )
    return _Rays(u[None, :], v[:, None])


_LITTLE_ENDIAN = sys.byteorder == "little"
_TORCH_DTYPES = {np.float32: torch.float32, np.uint8: torch.uint8}
# where each byte of a packed 0x00RRGGBB word sits in memory: (R, G, B, zero) byte offsets
_RGB_BYTES = (2, 1, 0, 3) if _LITTLE_ENDIAN else (1, 2, 3, 0)
_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A work array of this thread, kept between frames: a fresh frame-sized array each frame
    costs its page faults again (the kernels run on the publisher thread, render anywhere).
    A request for fewer rows than the kept array has is a view of its first rows."""
    arrays = _SCRATCH.__dict__.setdefault("arrays", {})
    array = arrays.get(name)
    if (
        array is None
        or array.shape[1:] != shape[1:]
        or array.shape[0] < shape[0]
        or array.dtype != dtype
    ):
        array = arrays[name] = np.empty(shape, dtype)
    return array[: shape[0]]


def _packed_rgb(rgb: np.ndarray) -> np.ndarray:
    """PointCloud2's packed colour of contiguous (h, w, 3) RGB as float32 words 0x00RRGGBB: one
    OpenCV pass to B, G, R, A bytes (a channel-reversed BGR view goes in as BGR, uncopied), read
    as little-endian words, alpha cleared into the native word order."""
    bgra = _scratch("bgra", rgb.shape[:2] + (4,), np.uint8)
    if rgb.strides[-1] < 0:
        cv2.cvtColor(rgb[..., ::-1], cv2.COLOR_BGR2BGRA, dst=bgra)
    else:
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA, dst=bgra)
    words = _scratch("rgb_words", rgb.shape[:2], np.uint32)
    np.bitwise_and(bgra.view("<u4")[..., 0], np.uint32(0x00FFFFFF), out=words)
    return words.view(np.float32)


# Points per band of the CPU cloud: a band's planes and its share of the cloud (16 B a point
# each) stay in the cache between the passes that write and the pass that interleaves them.
# Whole frames made the cost per megapixel with points grow with the frame (4K / 1242x375:
# 1.43x; banded 0.89-1.19x between runs: bench/RESULTS.md, the frame-function table).
CLOUD_BAND_POINTS = 1 << 18


class HostKernels:
    """The frame rules on numpy arrays, with OpenCV where it saves passes (CPU inference)."""

    @staticmethod
    def finite_count(raw: np.ndarray) -> int:
        # NaN and inf carry through a sum (inf - inf is NaN): a finite sum means an all-finite
        # frame, the usual case, in one pass 12x faster than cv2.checkRange. A sum that
        # overflowed only sends a finite frame to the exact count.
        if np.isfinite(cv2.sumElems(raw)[0]):
            return raw.size
        return cv2.countNonZero(cv2.inRange(raw, -LARGEST_FLOAT32, LARGEST_FLOAT32))

    @staticmethod
    def mask(raw: np.ndarray, lo: float, hi: float, out: np.ndarray) -> np.ndarray:
        """out = raw inside [lo, hi] and > 0, NaN elsewhere; the uint8 validity mask."""
        valid = cv2.inRange(raw, max(lo, SMALLEST_POSITIVE), hi)
        out.fill(np.nan)
        cv2.copyTo(raw, valid, out)
        return valid

    @staticmethod
    def cloud(depth: np.ndarray, rays: _Rays, rgb: Optional[np.ndarray], step: int,
              out: np.ndarray) -> None:  # fmt: skip
        """x, y, z (and the packed colour) computed into contiguous planes, then interleaved
        into `out` by one cv2.merge pass, a band of rows at a time (CLOUD_BAND_POINTS):
        writing each field through a 16-byte stride took 2.9x the time at 1920x1080."""
        rows, width = out.shape[:2]
        band = max(1, CLOUD_BAND_POINTS // width)
        for top in range(0, rows, band):
            bottom = min(rows, top + band)
            z = band_depth = depth[top * step : bottom * step : step, ::step]
            if step > 1:  # decimated: gathered into a plane (whole rows are one already)
                z = _scratch("z", band_depth.shape, np.float32)
                np.copyto(z, band_depth)
            x, y = _scratch("x", z.shape, np.float32), _scratch("y", z.shape, np.float32)
            np.multiply(rays.u, z, out=x)
            np.multiply(rays.v[top:bottom], z, out=y)
            planes = [x, y, z]
            if rgb is not None:  # decimated: a small copy; whole: the pixels as they are
                pixels = rgb[top * step : bottom * step : step, ::step]
                planes.append(_packed_rgb(np.ascontiguousarray(pixels) if step > 1 else pixels))
            band_out = out[top:bottom]
            merged = cv2.merge(planes, dst=band_out)
            if not np.shares_memory(merged, band_out):  # OpenCV allocated instead: never lost
                band_out[...] = merged

    @staticmethod
    def preview(depth: np.ndarray, valid: np.ndarray, s: FrameSettings, lut: np.ndarray,
                out: np.ndarray) -> None:  # fmt: skip
        apply_palette(palette_index(depth, s.colorize_min, s.colorize_max, valid), lut, out)

    @staticmethod
    def resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
        return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)

    @staticmethod
    def rgb(pixels: np.ndarray, order: str) -> np.ndarray:
        return pixels if order == "rgb" else pixels[..., ::-1]


class DeviceKernels:
    """The same rules as torch ops, where the depth is (CUDA)."""

    @staticmethod
    def finite_count(raw: torch.Tensor) -> torch.Tensor:
        return torch.isfinite(raw).sum()  # 0-d, read once the device is done

    @staticmethod
    def mask(raw: torch.Tensor, lo: float, hi: float, out: torch.Tensor) -> torch.Tensor:
        valid = (raw >= max(lo, SMALLEST_POSITIVE)) & (raw <= hi)
        nan = torch.tensor(float("nan"), dtype=raw.dtype, device=raw.device)
        torch.where(valid, raw, nan, out=out)
        return valid

    @staticmethod
    def cloud(depth: torch.Tensor, rays: _Rays, rgb: Optional[torch.Tensor], step: int,
              out: torch.Tensor) -> None:  # fmt: skip
        z = depth[::step, ::step]
        u = torch.from_numpy(rays.u).to(out.device, non_blocking=True)
        v = torch.from_numpy(rays.v).to(out.device, non_blocking=True)
        torch.mul(u, z, out=out[..., 0])
        torch.mul(v, z, out=out[..., 1])
        out[..., 2].copy_(z)
        if rgb is not None:
            word = out.view(torch.uint8)[..., 12:16]
            rgb = rgb[::step, ::step]
            for channel, byte in enumerate(_RGB_BYTES[:3]):
                word[..., byte].copy_(rgb[..., channel])
            word[..., _RGB_BYTES[3]].zero_()

    @staticmethod
    def preview(depth: torch.Tensor, valid: torch.Tensor, s: FrameSettings, lut: torch.Tensor,
                out: torch.Tensor) -> None:  # fmt: skip
        scale = index_scale(s.colorize_min, s.colorize_max)
        level = (s.colorize_max - depth).mul_(scale).clamp_(0, PALETTE_LEVELS - 1).round_()
        index = torch.where(valid, level, float(INVALID_INDEX)).to(torch.long)
        torch.index_select(lut, 0, index.flatten(), out=out.view(-1, 3))

    @staticmethod
    def rgb(pixels: torch.Tensor, order: str) -> torch.Tensor:
        return pixels if order == "rgb" else pixels.flip(-1)

    @staticmethod
    def resize(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
        x = F.interpolate(pixels.permute(2, 0, 1)[None].float(), size=(height, width), mode="area")
        return x[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)


class FrameRenderer:
    """Turns decoded frames into their outputs; owns the host buffers.

    With an estimator it runs the model too (the node); without one (`device` only) it turns a
    depth map computed elsewhere into the same outputs (render_depth: a node that runs the
    SPACE-CLIP decoder on its own encoder, space_clip_ros.shared).
    """

    def __init__(
        self,
        estimator: Optional["DepthEstimator"] = None,
        device: Optional[torch.device] = None,
        camera_fix: str = "publish the camera's CameraInfo",
    ) -> None:
        """camera_fix: what the user does when a frame comes without intrinsics (the warning of
        an assumed camera names it)."""
        if (estimator is None) == (device is None):
            raise ValueError("give an estimator, or the device of the depth maps, not both")
        self.estimator = estimator
        self.camera_fix = camera_fix
        self.device = estimator.device if estimator is not None else torch.device(device)
        self._on_device = self.device.type != "cpu"
        # one set per stream (camera): cameras of different sizes never reallocate each other's
        self._buffers: dict[str, dict[str, HostBuffer]] = {}
        self._lut = preview_lut("bgr")
        self._device_lut = torch.from_numpy(self._lut).to(self.device) if self._on_device else None

    def render(self, image: ColorImage, plan: FramePlan) -> FrameProducts:
        """Every output `plan` asks for, for one decoded image."""
        return self.complete(self.begin(image, plan))

    def render_depth(
        self, depth, image: ColorImage, plan: FramePlan, stream: str = ""
    ) -> FrameProducts:
        """Every output `plan` asks for from a depth map computed elsewhere: (h, w) float32
        metres (a tensor on the device, or a numpy array) at the plan's output size for
        `image` (its colours and size). The same rules as for the node's own frames."""
        pending = self._pending(image, plan, stream)
        if tuple(depth.shape) != (pending.height, pending.width):
            raise ValueError(
                f"depth is {tuple(depth.shape)} but the plan's output for a "
                f"{image.pixels.shape[1]}x{image.pixels.shape[0]} image is "
                f"{pending.width}x{pending.height} (output_scale {plan.settings.output_scale})"
            )
        if plan.needs_depth:
            with torch.inference_mode():
                depth = torch.as_tensor(depth, dtype=torch.float32, device=self.device)
                pixels = torch.from_numpy(np.ascontiguousarray(image.pixels)).to(self.device)
                self._attach(pending, image, pixels, depth)
        return self.complete(pending)

    # ------------------------------------------------------------------ first half

    def begin(self, image: ColorImage, plan: FramePlan) -> PendingFrame:
        """Upload and infer; on a GPU also post-process and start the copies. Does not wait for
        the device."""
        return self.begin_many([(image, plan)])[0]

    def begin_many(
        self, frames: Sequence[tuple[ColorImage, FramePlan]], streams: Sequence[str] = ()
    ) -> list[PendingFrame]:
        """`begin` for several frames (several cameras, of any sizes) with one forward pass.

        streams: a name per frame (its camera) whose host buffers complete() fills; frames of
        one stream must be completed in order, each before the next one's products are read.
        """
        if self.estimator is None:
            raise RuntimeError("this renderer has no estimator: use render_depth")
        names = list(streams) or [""] * len(frames)
        pending = [self._pending(image, plan, s) for (image, plan), s in zip(frames, names)]
        inferred = [(p, image) for p, (image, plan) in zip(pending, frames) if plan.needs_depth]
        if not inferred:
            return pending
        views = []
        for p, image in inferred:  # the camera mapping: CameraInfo, else the assumed camera
            height, width = image.pixels.shape[:2]
            camera = p.plan.camera or p.plan.assumed_camera
            view_plan = self.estimator.view_plan(width, height, camera, self.camera_fix)
            p.camera_warning = view_plan.warning
            p.camera_source = camera_source(self.estimator.camera, p.plan)
            views.append(view_plan.view)
        with torch.inference_mode():
            uploaded = [self.estimator.upload(image.pixels)[0] for _, image in inferred]
            depths = self.estimator.infer_frames(
                [
                    (px, p.order, (p.height, p.width), view)
                    for (p, _), px, view in zip(inferred, uploaded, views)
                ]
            )
            for (p, image), pixels, depth in zip(inferred, uploaded, depths):
                self._attach(p, image, pixels, depth)
        return pending

    @staticmethod
    def _pending(image: ColorImage, plan: FramePlan, stream: str) -> PendingFrame:
        in_h, in_w = image.pixels.shape[:2]
        width, height = rescaled_size(in_w, in_h, plan.settings.output_scale)
        intr = output_intrinsics(plan.camera, width, height) if plan.camera else None
        return PendingFrame(plan, width, height, intr, image.order, stream)

    def _attach(self, pending: PendingFrame, image: ColorImage, pixels, depth) -> None:
        """Give a frame its raw depth: on a GPU post-processed and copying at once, on the CPU
        kept for complete()."""
        if self._on_device:
            self._start_on_device(pending, pixels, depth)
        else:
            pending.pixels, pending.depth = image.pixels, depth.numpy()

    def _start_on_device(self, pending: PendingFrame, pixels, depth) -> None:
        """Post-process on the device and start the copies to pinned host memory."""
        targets = {
            name: torch.empty(shape, dtype=_TORCH_DTYPES[dtype], device=depth.device)
            for name, (shape, dtype) in self._shapes(pending).items()
        }
        scratch = None if "depth" in targets else torch.empty_like(depth)
        finite = postprocess(DeviceKernels, pending, depth, pixels, targets, self._device_lut,
                             scratch)  # fmt: skip
        pending.staged = {
            name: torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
            for name, t in {**targets, "finite": finite}.items()
        }
        pending.done = torch.cuda.Event()
        pending.done.record()

    # ------------------------------------------------------------------ second half

    def complete(self, pending: PendingFrame) -> FrameProducts:
        """Wait for the device and fill the host buffers; the frame's FrameProducts."""
        products = FrameProducts(pending.width, pending.height, pending.intrinsics)
        products.camera_warning = pending.camera_warning
        products.camera_source = pending.camera_source
        if not pending.plan.needs_depth:
            return products
        buffers = self._stream_buffers(pending.stream)
        targets = {
            name: buffers[name].ensure(shape, dtype)
            for name, (shape, dtype) in self._shapes(pending).items()
        }
        if pending.staged is not None:  # GPU: the work is done or in flight; wait, then copy
            pending.done.synchronize()
            for name, target in targets.items():
                np.copyto(target, pending.staged[name].numpy())
            finite = int(pending.staged["finite"])
        else:
            scratch = None
            if "depth" not in targets:
                scratch = buffers["scratch"].ensure(pending.depth.shape, np.float32)
            finite = postprocess(HostKernels, pending, pending.depth, pending.pixels, targets,
                                 self._lut, scratch)  # fmt: skip
        products.finite_fraction = finite / max(1, pending.width * pending.height)
        for name in targets:
            setattr(products, name, buffers[name])
        return products

    def _stream_buffers(self, stream: str) -> dict[str, HostBuffer]:
        """The host buffers of one stream; "scratch" holds the masked depth when `depth` itself
        is not planned (the cloud and the preview read it)."""
        if stream not in self._buffers:
            names = ("depth", "points", "preview", "scratch")
            self._buffers[stream] = {name: HostBuffer() for name in names}
        return self._buffers[stream]

    # ------------------------------------------------------------------ post-processing

    @staticmethod
    def _shapes(pending: PendingFrame) -> dict[str, tuple[tuple[int, ...], type]]:
        """name -> (shape, numpy dtype) of every output the plan asks for."""
        plan, h, w = pending.plan, pending.height, pending.width
        shapes: dict[str, tuple[tuple[int, ...], type]] = {}
        if Output.DEPTH in plan.outputs:
            shapes["depth"] = ((h, w), np.float32)
        if Output.POINTS in plan.outputs:
            step = plan.settings.point_decimation
            fields = 4 if plan.settings.points_rgb else 3
            shapes["points"] = ((-(-h // step), -(-w // step), fields), np.float32)
        if Output.COLORIZED in plan.outputs:
            shapes["preview"] = ((h, w, 3), np.uint8)
        return shapes


def postprocess(kernels, pending: PendingFrame, raw, pixels, out: dict, lut, scratch):
    """Fill `out` (arrays of the kernels' kind: HostKernels numpy, DeviceKernels tensors) from
    a frame's raw depth (h, w) and input pixels (H, W, 3, in pending.order); the number of
    finite raw values. scratch: an array like raw for the masked depth when `out` holds no
    "depth" (the cloud and the preview read it)."""
    s = pending.plan.settings
    finite = kernels.finite_count(raw)
    masked = out.get("depth", scratch)
    valid = kernels.mask(raw, s.min_depth, s.max_depth, masked)
    if "points" in out:
        rgb = None
        if s.points_rgb:
            rgb = kernels.rgb(pixels, pending.order)
            if tuple(rgb.shape[:2]) != (pending.height, pending.width):
                rgb = kernels.resize(rgb, pending.width, pending.height)
        rays = _rays(pending.intrinsics, s.point_decimation)
        kernels.cloud(masked, rays, rgb, s.point_decimation, out["points"])
    if "preview" in out:
        kernels.preview(masked, valid, s, lut, out["preview"])
    return finite
