"""Node parameters: one dataclass per node is the declaration, the defaults and the validation.

Each field of a `Parameters` dataclass carries its description and its range, choices or
pattern in the field metadata (`param`); `declare` declares them as ROS parameters (descriptors
with ranges, so `ros2 param describe` tells the user the limits), refuses overrides of names the
node does not declare (param_overrides.check_declared: a typo is an error with a did-you-mean,
never a silently ignored value) and reads them back into the dataclass. Every problem is
collected and reported in one ParameterError whose lines name the parameter and the fix, so a
launch with three typos fails once with three lines instead of three times.

`NodeConfig` is the depth node's (config/depth.yaml lists every field with its default; a test
keeps the two in step); the accuracy node's is ros/accuracy_node.AccuracyConfig.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from space_clip_ros.errors import ConfigError
from space_clip_ros.io.limits import DEFAULT_MAX_FRAME_PIXELS
from space_clip_ros.ros.qos import INPUT_RELIABILITY_CHOICES, OUTPUT_RELIABILITY_CHOICES
from space_clip_ros.runtime_choices import DEVICE_PATTERN, PRECISION_CHOICES

ParamValue = Union[bool, int, float, str]
Config = TypeVar("Config", bound="Parameters")


class ParameterError(ConfigError):
    """One or more parameters are invalid; each line names the parameter and the fix."""


def param(
    default: ParamValue,
    description: str,
    *,
    limits: tuple | None = None,
    choices: tuple[str, ...] | None = None,
    pattern: str | None = None,
    runtime: bool = False,
    names: bool = False,
) -> Any:
    """runtime: a change applies to the running node (read per frame or per timer tick); the
    others shape the model, the device or the wiring and need a reconfigure. names: a list of
    names, given as a string array or as one comma-separated string (stored as the latter)."""
    return field(
        default=default,
        metadata={
            "description": description,
            "range": limits,
            "choices": choices,
            "pattern": pattern,
            "runtime": runtime,
            "names": names,
        },
    )


_ROS_TYPE_HINT = {
    bool: "true or false",
    int: "an integer (no decimal point)",
    float: "a number with a decimal point, e.g. 5.0",
    str: "a string (quote it)",
}


@dataclass(frozen=True)
class Parameters:
    """Base of a node's parameter dataclass: every field is a `param`.

    LISTING says where a user finds the node's parameters listed with their ranges, for the
    messages that refuse bad or unknown ones. Subclasses add checks across fields by extending
    `problems`.
    """

    LISTING: ClassVar[str] = "ros2 param describe"

    def problems(self) -> list[str]:
        """Every invalid value, as 'name: what is wrong; fix'. Ranges are also enforced by ROS."""
        out = []
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if meta["range"] is not None and not (meta["range"][0] <= value <= meta["range"][1]):
                out.append(
                    f"{f.name}: {value!r} is outside [{meta['range'][0]}, {meta['range'][1]}]; "
                    "pick a value inside"
                )
            if meta["choices"] is not None and value not in meta["choices"]:
                out.append(f"{f.name}: {value!r} is not one of {', '.join(meta['choices'])}")
            if meta["pattern"] is not None and not re.fullmatch(meta["pattern"], value):
                out.append(f"{f.name}: {value!r} is not valid; {meta['description']}")
        return out

    def validated(self: Config) -> Config:
        _raise_if_any(self.problems())
        return self

    @classmethod
    def defaults(cls) -> dict[str, ParamValue]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def descriptor(cls, name: str) -> ParameterDescriptor:
        meta = cls.__dataclass_fields__[name].metadata
        desc = ParameterDescriptor(name=name, description=meta["description"])
        desc.dynamic_typing = meta["names"]  # a string array or a comma-separated string
        if meta["choices"]:
            desc.additional_constraints = "one of: " + ", ".join(meta["choices"])
        if meta["pattern"]:
            desc.additional_constraints = f"matches: {meta['pattern']}"
        if meta["range"] is not None:
            low, high = meta["range"]
            if isinstance(low, int) and isinstance(high, int):
                desc.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
            else:
                desc.floating_point_range = [
                    FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)
                ]
        return desc

    @classmethod
    def declare(cls: type[Config], node: Node) -> Config:
        """Declare every parameter on `node` (once), refuse overrides of undeclared names
        (param_overrides.check_declared) and read a validated config.

        A rejected override (wrong type, out of range) is declared with its default instead, so
        the remaining values are still validated and every problem is reported in one error.
        """
        from space_clip_ros.ros.param_overrides import check_declared  # it imports this module

        problems = []
        for name, default in cls.defaults().items():
            if node.has_parameter(name):
                continue
            try:
                node.declare_parameter(name, default, cls.descriptor(name))
            except InvalidParameterTypeException as exc:
                hint = _ROS_TYPE_HINT[type(default)]
                problems.append(f"{name}: wrong type ({exc}); write {hint}")
            except InvalidParameterValueException as exc:
                problems.append(
                    f"{name}: {exc}; pick a value in the declared range (ros2 param describe)"
                )
            else:
                continue
            node.declare_parameter(name, default, cls.descriptor(name), ignore_override=True)
        values, wrong = cls._values(cls._current(node))
        config = cls(**values)
        _raise_if_any(problems + wrong + config.problems(), f"{cls.LISTING} lists each parameter")
        check_declared(node, node.list_parameters([], 0).names, cls.LISTING)
        return config

    @classmethod
    def read(
        cls: type[Config], node: Node, changes: dict[str, ParamValue] | None = None
    ) -> Config:
        """The node's current parameters (optionally with proposed changes applied), validated."""
        values, wrong = cls._values({**cls._current(node), **(changes or {})})
        _raise_if_any(wrong)
        return cls(**values).validated()

    @classmethod
    def _current(cls, node: Node) -> dict[str, Any]:
        return {name: node.get_parameter(name).value for name in cls.defaults()}

    @classmethod
    def _values(cls, raw: dict[str, Any]) -> tuple[dict[str, ParamValue], list[str]]:
        """Parameter values as the dataclass holds them: name lists (a string array or one
        string) become one comma-separated string; anything else there is a problem, with the
        fix."""
        values, problems = dict(raw), []
        for f in dataclasses.fields(cls):
            if not f.metadata["names"]:
                continue
            value = values[f.name]
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                values[f.name] = ",".join(value)
            elif not isinstance(value, str):
                problems.append(
                    f"{f.name}: {value!r} is not a list of names; write a string array "
                    f'({f.name}:="[front, left]") or a comma-separated string '
                    f"({f.name}:=front,left)"
                )
                values[f.name] = f.default
        return values, problems

    @classmethod
    def runtime_parameters(cls) -> frozenset[str]:
        """The parameters a running (configured) node applies as soon as they are set."""
        return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata["runtime"])

    @classmethod
    def help_text(cls) -> str:
        """One line per parameter: name (default): description, for a node's --help."""
        return "\n".join(
            f"  {f.name} ({f.default!r}): {f.metadata['description']}"
            for f in dataclasses.fields(cls)
        )


def _raise_if_any(problems: list[str], listing: str | None = None) -> None:
    """One ParameterError for all problems; `listing`: where the parameters are documented."""
    if problems:
        fix = f"correct the parameter(s) above ({listing})" if listing else None
        raise ParameterError("invalid parameters:\n  " + "\n  ".join(problems), fix=fix)


# A camera's namespace relative to the node: ROS name tokens joined by '/'.
CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class NodeConfig(Parameters):
    LISTING: ClassVar[str] = "config/depth.yaml"

    cameras: str = param(
        "",
        "Cameras this node serves, as namespaces relative to the node (a string array, or one "
        "comma-separated string): camera `front` reads front/image and front/camera_info and "
        "publishes front/depth, front/depth/camera_info, front/points, front/depth/colorized; "
        "their frames share one model, inferred in batches. Empty: one camera on image, "
        "camera_info, depth, ... in the node's namespace.",
        names=True,
    )
    batch_wait: float = param(
        0.01,
        "Seconds the inference worker waits, once a camera's frame is ready, for the other "
        "cameras' frames to join the batch (a silent camera costs at most this per batch).",
        limits=(0.0, 1.0),
        runtime=True,
    )
    autostart: bool = param(
        True,
        "Configure and activate on start-up, so `ros2 run` just works. "
        "False: wait for a lifecycle manager.",
    )
    checkpoint: str = param(
        "",
        "SPACE-CLIP checkpoint: a directory with decoder.safetensors + config.yaml, "
        "the .safetensors file, or an exported .onnx graph "
        "(run with ONNX Runtime: TensorRT/CUDA/CPU). "
        "Empty runs an UNTRAINED decoder (meaningless depth; for wiring tests only).",
    )
    backbone_weights: str = param(
        "",
        "Local CLIP backbone weights overriding the checkpoint's pretrained tag (offline robots). "
        "Empty: as the checkpoint says.",
    )
    device: str = param(
        "auto",
        "Inference device: auto (CUDA when present), cpu, cuda or cuda:N.",
        pattern=DEVICE_PATTERN,
    )
    precision: str = param(
        "auto",
        "Inference precision: auto (fp16 on CUDA, bf16 on a CPU with native bf16, else fp32), "
        "fp32, fp16 or bf16. Half paths keep the depth head's last conv and resize in fp32. "
        "An .onnx graph runs fp32, or fp16 through TensorRT.",
        choices=PRECISION_CHOICES,
    )
    trt_cache_dir: str = param(
        "",
        "Directory for TensorRT engine and timing caches (.onnx checkpoints): the engine is "
        "built once, not at every start. Empty: ~/.cache/space_clip_ros/trt.",
    )
    verify_on_configure: bool = param(
        False,
        "At configure, compare the configured backend/precision with fp32 PyTorch on synthetic "
        "frames (space-clip-verify) and fail configure past verify_tolerance.",
    )
    verify_tolerance: float = param(
        0.01,
        "Largest AbsRel against fp32 PyTorch (and per-frame scale spread) verify_on_configure "
        "accepts.",
        limits=(0.0, 1.0),
    )
    max_consecutive_failures: int = param(
        10,
        "After this many frames in a row fail in inference (e.g. a persistent CUDA error), the "
        "node logs FATAL and exits non-zero so launch's respawn can restart it (0 = never exit).",
        limits=(0, 1_000_000),
    )
    min_depth: float = param(
        0.1, "Depths below this (metres) are published as NaN.", limits=(0.0, 1000.0), runtime=True
    )
    max_depth: float = param(
        80.0,
        "Depths above this (metres) are published as NaN (80 m is the KITTI evaluation cap).",
        limits=(0.001, 1000.0),
        runtime=True,
    )
    output_scale: float = param(
        1.0,
        "Size of the depth image relative to the input (1.0 = same size). "
        "Below 1 the image is downscaled before inference "
        "and depth/camera_info K and P are scaled to match.",
        limits=(0.05, 1.0),
        runtime=True,
    )
    point_decimation: int = param(
        1,
        "Keep every n-th depth pixel in both directions for `points` (1 = full organized cloud).",
        limits=(1, 64),
        runtime=True,
    )
    points_rgb: bool = param(
        True,
        "Colour the point cloud with the camera image "
        "(packed float32 'rgb' field, as rviz2 expects).",
        runtime=True,
    )
    default_focal_length: float = param(
        0.0,
        "Focal length (pixels, at the input image's size; principal point at the centre) to "
        "make depth metric with when no camera_info of the image's size is known. 0: the "
        "checkpoint's training camera's focal length, with a warning. camera_info always wins; "
        "points and depth/camera_info still need camera_info.",
        limits=(0.0, 100000.0),
        runtime=True,
    )
    camera_info_wait: float = param(
        0.5,
        "Seconds the first frame of an image size may wait for a camera_info of that size (a bag "
        "or driver that sends the image before its CameraInfo); later frames never wait. "
        "0 = publish depth alone until one arrives.",
        limits=(0.0, 10.0),
        runtime=True,
    )
    publish_depth: bool = param(
        True, "Publish `depth` (32FC1 metres) when it has subscribers.", runtime=True
    )
    publish_camera_info: bool = param(
        True, "Publish `depth/camera_info` when it has subscribers.", runtime=True
    )
    publish_points: bool = param(
        True, "Publish `points` (PointCloud2) when it has subscribers.", runtime=True
    )
    publish_colorized: bool = param(
        True, "Publish `depth/colorized` (bgr8 preview) when it has subscribers.", runtime=True
    )
    use_compressed: bool = param(
        False,
        "Subscribe to `image/compressed` (sensor_msgs/CompressedImage, jpeg/png) "
        "instead of `image`.",
    )
    input_color_order: str = param(
        "auto",
        "Channel order of colour input: auto trusts the encoding; "
        "rgb / bgr override it for drivers that mislabel their images.",
        choices=("auto", "rgb", "bgr"),
        runtime=True,
    )
    max_image_pixels: int = param(
        DEFAULT_MAX_FRAME_PIXELS,
        "Frames with more pixels than this are rejected, compressed ones from their header before "
        "decoding (protects memory from corrupt headers and tiny PNG bombs). Default: 4K UHD.",
        limits=(1, 1 << 30),
        runtime=True,
    )
    input_reliability: str = param(
        "best_available",
        "QoS reliability of the image and camera_info subscriptions. best_available matches "
        "reliable and best-effort publishers (RELIABLE on Humble, which lacks it).",
        choices=INPUT_RELIABILITY_CHOICES,
    )
    input_qos_depth: int = param(
        5,
        "History depth of the input subscriptions (the node itself keeps only the newest frame).",
        limits=(1, 100),
    )
    output_reliability: str = param(
        "reliable",
        "QoS reliability of all outputs. reliable serves rviz2's default displays and best-effort "
        "subscribers alike; best_effort loses large messages between processes.",
        choices=OUTPUT_RELIABILITY_CHOICES,
    )
    output_qos_depth: int = param(2, "History depth of the output publishers.", limits=(1, 100))
    colorize_min: float = param(
        1.0,
        "Depth (metres) drawn red in `depth/colorized`; "
        "the range is fixed so a colour is a distance.",
        limits=(0.0, 1000.0),
        runtime=True,
    )
    colorize_max: float = param(
        50.0,
        "Depth (metres) drawn blue in `depth/colorized`.",
        limits=(0.001, 1000.0),
        runtime=True,
    )
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages.", limits=(0.1, 60.0), runtime=True
    )
    log_period: float = param(
        10.0, "Seconds between status log lines (0 = never).", limits=(0.0, 3600.0), runtime=True
    )

    @property
    def camera_names(self) -> tuple[str, ...]:
        """The cameras' namespaces; ("",) for the single camera in the node's namespace."""
        names = tuple(n.strip() for n in self.cameras.split(",") if n.strip())
        return names or ("",)

    def problems(self) -> list[str]:
        out = super().problems()
        names = self.camera_names
        for name in names:
            if name and not CAMERA_NAME.fullmatch(name):
                out.append(
                    f"cameras: {name!r} is not a relative namespace; use ROS name tokens "
                    "(letters, digits, underscores) joined by '/', e.g. front or arm/wrist"
                )
        if len(set(names)) != len(names):
            out.append(f"cameras: {', '.join(names)} names a camera twice; list each once")
        if self.min_depth >= self.max_depth:
            out.append(
                f"min_depth ({self.min_depth}) must be below max_depth ({self.max_depth}); "
                "lower min_depth or raise max_depth"
            )
        if self.colorize_min >= self.colorize_max:
            out.append(
                f"colorize_min ({self.colorize_min}) must be below colorize_max "
                f"({self.colorize_max}); swap or widen them"
            )
        return out


def needs_reconfigure(current: Parameters, proposed: Parameters) -> list[str]:
    """Names whose value would change but which only take effect at configure."""
    fixed = set(current.defaults()) - current.runtime_parameters()
    return sorted(n for n in fixed if getattr(current, n) != getattr(proposed, n))


def reconfigure_reason(names: list[str], node: str) -> str:
    """Why a change is refused, and the way to make it."""
    return (
        f"{', '.join(names)} cannot change while {node} is configured: they shape the model, the "
        "device or the topics. Apply with a reconfigure: ros2 lifecycle set "
        f"{node} deactivate, cleanup, then set the parameter, configure and activate "
        "(or restart the node with the new value)"
    )
