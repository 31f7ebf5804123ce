"""Typed model configuration and its strict YAML/JSON (de)serialisation.

Configuration flows one way: file or ROS parameters -> these dataclasses -> code. Parsing is
strict (unknown keys, wrong types and impossible values are errors that name the file, the field
and the fix) because a silently ignored typo in a model config produces a model that loads but
predicts garbage.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

import yaml

from space_clip_ros.errors import ConfigError, quote
from space_clip_ros.io.atomic import atomic_path

from .config_bounds import check_sizes

CONFIG_VERSION = 1
# A config.yaml is a few hundred bytes; a megabyte is a wrong file or an attack (YAML bombs).
MAX_CONFIG_BYTES = 1 << 20
INPUT_RESIZE_METHODS = ("bilinear_antialias", "pil_bicubic_uint8")
# Normalisation of [0, 1] pixels: a mean of such pixels lies in [0, 1]; open_clip's towers use
# std 0.229 (ImageNet) to 1.0 (SigLIP-style "none"), and a std of 1e-300 or NaN turns every input,
# and so every depth, into inf/NaN while the model still loads.
NORMALIZATION_BOUNDS = {"mean": (0.0, 1.0), "std": (0.01, 10.0)}
MAX_WEIGHTS_SOURCE_CHARS = 4096  # PATH_MAX on Linux
MAX_FILE_NAME_BYTES = 255  # NAME_MAX: the longest file or folder name
# How a tower makes its global embedding (EncoderRecord.pooling) and which activation its MLPs
# compute (EncoderRecord.activation); model/encoder_record.py tells them from a built tower.
POOLINGS = ("class_token", "attention_pool", "mean_patch")
ACTIVATIONS = ("quick_gelu", "gelu", "gelu_tanh", "other")


@dataclass
class BackboneConfig:
    """Which frozen open_clip vision tower to run, and at what input size.

    pretrained is an open_clip pretrained tag (downloaded by open_clip on a machine with internet),
    a path to a local CLIP checkpoint (.safetensors, or a torch file loaded with weights_only),
    or null for random weights (tests and dry runs only). model_cfg, when given, is a full
    open_clip model config (embed_dim + vision_cfg) that replaces the registry entry for
    model_name: that is how custom and tiny test towers are described.
    """

    model_name: str = "ViT-B-16"
    pretrained: Optional[str] = "openai"
    model_cfg: Optional[dict] = None
    # QuickGELU (OpenAI weights) vs GELU; null takes it from the pretrained tag ('openai') or the
    # model (open_clip's *-quickgelu names). Getting it wrong does not fail, it silently degrades
    # the features, so a local weights file for an architecture with OpenAI weights requires it.
    quick_gelu: Optional[bool] = None
    # Normalisation; null takes the pretrained tag's values (CLIP's OpenAI mean/std otherwise).
    mean: Optional[tuple[float, float, float]] = None
    std: Optional[tuple[float, float, float]] = None
    # Encoder input (height, width). (224, 224) is the paper's squashed square input; a
    # multiple of the patch size with another aspect (e.g. 224 x 672 for KITTI) keeps the
    # frame's aspect ratio and interpolates the positional embeddings.
    input_size: tuple[int, int] = (224, 224)
    # How frames are resized to input_size (INPUT_RESIZE_METHODS), the same in training and
    # inference: bilinear_antialias (float, this package's default) or pil_bicubic_uint8 (the
    # SPACE-CLIP release's PIL bicubic on 8-bit images; what its checkpoints were trained with).
    input_resize: str = "bilinear_antialias"


@dataclass
class DecoderConfig:
    """SPACE-CLIP decoder hyper-parameters (paper defaults; None layer lists derive from depth).

    With None, semantic layers are [L, 3L/4, L/2, L/4] and structural layers [2, 1, 0] for an
    L-block tower, which is exactly the paper's [12, 9, 6, 3] / [2, 1, 0] for ViT-B/16 and scales
    to deeper towers (ViT-L/14: [24, 18, 12, 6]).
    """

    semantic_layers: Optional[list[int]] = None
    structural_layers: Optional[list[int]] = None
    semantic_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32])
    structural_channels: list[int] = field(default_factory=lambda: [256, 128, 64])
    film_hidden: int = 256
    use_film: bool = True
    use_structural: bool = True
    dropout: float = 0.1
    head_hidden: int = 16
    aux_heads: int = 3


@dataclass
class CameraConfig:
    """The camera the decoder was trained under (docs/ARCHITECTURE.md, "Camera geometry").

    The decoder reads metres from apparent size, i.e. from the focal length in the encoder's
    pixels: the training crops (crop_size) resampled to backbone.input_size, with these
    intrinsics. Inference maps every input camera onto it (model/canonical_camera.py). Written
    by training/ and space-clip-import; a checkpoint without it gets no mapping (and says so).
    """

    crop_size: tuple[int, int]  # (height, width) of the training crops, pixels
    focal: tuple[float, float]  # (fx, fy) of the crops, pixels
    # (cx, cy) in crop pixels (pixel centres at integers): where the optical axis sat in the
    # crops, on average over the training crops (flips included).
    principal_point: tuple[float, float]
    source: str = ""  # where the numbers come from, for people: dataset, calibration, recipe


@dataclass
class WeightsFingerprint:
    """SHA-256 of the frozen tower's tensors, cast to each precision a host may hold them in.

    A host that keeps its tower in bf16 or fp16 compares its own bytes with the matching digest,
    so a half-precision copy of the training weights is recognised as the same weights.
    """

    float32: str = ""
    bfloat16: str = ""
    float16: str = ""


@dataclass
class EncoderRecord:
    """What the decoder was trained on, measured from the built tower when it was saved.

    The decoder only works on features of this tower: space_clip_ros.shared.attach compares a
    host encoder with it (docs/ARCHITECTURE.md, "Shared encoder"). The layer indices it read are
    the decoder section's (resolved, never null, in a saved checkpoint); mean/std are the
    normalisation the tower was fed, resolved (never null). Checkpoints written before this
    record existed load without it.
    """

    width: int = 0
    layers: int = 0
    patch_size: tuple[int, int] = (0, 0)
    grid: tuple[int, int] = (0, 0)
    prefix_tokens: int = 0  # class/register tokens before the patch tokens
    pooling: str = ""  # POOLINGS: how the global embedding is made
    activation: str = ""  # ACTIVATIONS: the blocks' MLP activation
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    weights: WeightsFingerprint = field(default_factory=WeightsFingerprint)
    source: str = ""  # where the weights came from, for people (never compared)


@dataclass
class SpaceClipConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    camera: Optional[CameraConfig] = None  # None: a checkpoint from before the record existed
    version: int = CONFIG_VERSION
    encoder_record: Optional[EncoderRecord] = None

    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> "SpaceClipConfig":
        cfg = build_dataclass(cls, data, source, "")
        if cfg.version != CONFIG_VERSION:
            raise ConfigError(
                f"field 'version' is {cfg.version}, this package reads version {CONFIG_VERSION}",
                source=source,
                fix="re-export the checkpoint with this version of training/export.py",
            )
        validate(cfg, source)
        return cfg

    def save(self, path: Union[str, Path]) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "SpaceClipConfig":
        path = Path(path)
        return cls.from_dict(
            read_yaml_file(path, "the config.yaml written beside the checkpoint"), source=str(path)
        )


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (*name): a 400-byte 'billion laughs' document expands to
    gigabytes through them, and no config of ours needs one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML alias *{quote(event.anchor, 40)} is not "
                "allowed",
                source=self.name,
                fix="write the value out in full instead of referring to an &anchor",
            )
        return super().compose_node(parent, index)

    @classmethod
    def parse(cls, text: str, name: str) -> Any:
        loader = cls(text)  # the reader already rejects control characters here
        loader.name = name
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()


def read_yaml_file(path: Path, what: str) -> Any:
    """Plain data of a small UTF-8 YAML/JSON file; every problem a ConfigError naming the file.

    Refuses missing, oversized (> MAX_CONFIG_BYTES), non-UTF-8 and empty files and YAML aliases,
    so a hostile file costs neither memory nor a megabyte-long error message.
    """
    try:
        if not path.is_file():
            raise ConfigError("config file not found", source=path, fix=f"point to {what}")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"is {size} bytes, more than a config file's limit of {MAX_CONFIG_BYTES}",
                source=path,
                fix=f"point to {what}, not to another file",
            )
        raw = path.read_bytes()
    except OSError as exc:  # permission denied, an unreadable disk, a name too long
        raise ConfigError(
            f"cannot be read ({exc.strerror or type(exc).__name__})",
            source=path,
            fix="check the path and that this user may read the file",
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {quote(raw[exc.start : exc.start + 1])} at offset {exc.start})",
            source=path,
            fix="save the file as UTF-8 (plain ASCII YAML is UTF-8)",
        ) from exc
    if not text.strip():
        raise ConfigError(
            "the file is empty",
            source=path,
            fix=f"point to {what}; an empty file would silently mean every default",
        )
    try:
        return _NoAliasLoader.parse(text, str(path))
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"not valid YAML/JSON ({quote(str(exc), 400)})",
            source=path,
            fix="correct the syntax at the reported line",
        ) from exc
    except RecursionError as exc:  # thousands of nested [[[...]]]
        raise ConfigError("nested too deeply", source=path, fix=f"point to {what}") from exc


def validate(cfg: SpaceClipConfig, source: str = "<config>") -> None:
    """Value checks that types alone cannot express."""
    b, d = cfg.backbone, cfg.decoder

    def bad(name: str, why: str, fix: str) -> ConfigError:
        return ConfigError(f"field '{name}' {why}", source=source, fix=fix)

    if len(b.input_size) != 2 or min(b.input_size) < 16:
        raise bad(
            "backbone.input_size",
            f"is {quote(list(b.input_size))}",
            "give [height, width], each a multiple of the patch size (>= 16)",
        )
    if b.input_resize not in INPUT_RESIZE_METHODS:
        raise bad(
            "backbone.input_resize",
            f"is {b.input_resize!r}",
            f"use one of {', '.join(INPUT_RESIZE_METHODS)}",
        )
    if len(d.semantic_channels) != 4:
        raise bad(
            "decoder.semantic_channels",
            f"has {len(d.semantic_channels)} entries",
            "give 4 channel widths, one per decoder stage",
        )
    if len(d.structural_channels) != 3:
        raise bad(
            "decoder.structural_channels",
            f"has {len(d.structural_channels)} entries",
            "give 3 channel widths",
        )
    if d.use_structural and list(d.structural_channels) != list(d.semantic_channels[:3]):
        raise bad(
            "decoder.structural_channels",
            f"is {quote(list(d.structural_channels))} but the fused stages have "
            f"{list(d.semantic_channels[:3])}",
            "use the first three semantic_channels (the gates fuse equal widths)",
        )
    for name in ("semantic_channels", "structural_channels"):
        if any(c <= 0 for c in getattr(d, name)):
            raise bad(f"decoder.{name}", "contains a non-positive width", "use positive integers")
    if d.semantic_layers is not None and len(d.semantic_layers) != 4:
        raise bad(
            "decoder.semantic_layers",
            f"has {len(d.semantic_layers)} entries",
            "give 4 hidden-state indices (deep to shallow) or null",
        )
    if d.structural_layers is not None and len(d.structural_layers) != 3:
        raise bad(
            "decoder.structural_layers",
            f"has {len(d.structural_layers)} entries",
            "give 3 hidden-state indices or null",
        )
    if not 0.0 <= d.dropout < 1.0:
        raise bad("decoder.dropout", f"is {d.dropout}", "use a probability in [0, 1)")
    if not 0 <= d.aux_heads <= 3:
        raise bad("decoder.aux_heads", f"is {d.aux_heads}", "use 0..3 (one per non-final stage)")
    if d.film_hidden <= 0 or d.head_hidden <= 0:
        raise bad("decoder.film_hidden/head_hidden", "is not positive", "use positive integers")
    for name, (low, high) in NORMALIZATION_BOUNDS.items():
        value = getattr(b, name)
        if value is None:
            continue
        if len(value) != 3:
            raise bad(
                f"backbone.{name}",
                f"has {len(value)} entries",
                "give 3 values (R, G, B) or null for the pretrained tag's",
            )
        if not all(math.isfinite(v) and low <= v <= high for v in value):
            raise bad(
                f"backbone.{name}",
                f"is {quote(list(value))}, outside [{low}, {high}] (pixels are in [0, 1]; "
                "a NaN, infinite or tiny value makes every depth NaN)",
                "use the values the tower was trained with (OpenAI CLIP: mean [0.481, 0.458, "
                "0.408], std [0.269, 0.261, 0.276]) or null for the pretrained tag's",
            )
    if b.pretrained is not None:
        check_weights_source(b.pretrained, "backbone.pretrained", source)
    if cfg.encoder_record is not None:
        _validate_encoder_record(cfg.encoder_record, bad)
    if cfg.camera is not None:
        _validate_camera(cfg.camera, bad)
    check_sizes(cfg, source)


def check_weights_source(value: str, field: str, source: object = None) -> None:
    """A pretrained tag or weights path must be something a file system can be asked about.

    A 100,000-character value made `Path.is_file()` raise 'File name too long' deep inside the
    backbone, and the tool printed it whole; refused here, quoted, with the field to fix.
    """
    too_long = len(value) > MAX_WEIGHTS_SOURCE_CHARS or any(
        len(part.encode("utf-8", "surrogateescape")) > MAX_FILE_NAME_BYTES
        for part in value.split("/")
    )
    if too_long or not value.isprintable():
        raise ConfigError(
            f"{quote(value, 80)} is neither an open_clip pretrained tag nor a path this system "
            "can open (too long, or control characters)",
            source=source,
            field=field,
            fix="give a tag such as 'openai', or the path of a weights file",
        )


def _validate_encoder_record(r: EncoderRecord, bad: Any) -> None:
    """A record written by save_checkpoint is always complete; anything else was edited."""
    fix = "re-export the checkpoint (python -m training.export --checkpoint DIR --out NEW)"
    sizes = {"width": 1, "layers": 1, "patch_size": 2, "grid": 2}
    for name, count in sizes.items():
        values = getattr(r, name)
        values = [values] if count == 1 else list(values)
        if len(values) != count or any(v <= 0 for v in values):
            raise bad(
                f"encoder_record.{name}", f"is {quote(values if count > 1 else values[0])}", fix
            )
    if r.prefix_tokens < 0:
        raise bad("encoder_record.prefix_tokens", f"is {r.prefix_tokens}", fix)
    for name, allowed in (("pooling", POOLINGS), ("activation", ACTIVATIONS)):
        if getattr(r, name) not in allowed:
            raise bad(f"encoder_record.{name}", f"is {quote(getattr(r, name))}", fix)
    for name in ("mean", "std"):
        if len(getattr(r, name)) != 3:
            raise bad(f"encoder_record.{name}", "does not have 3 values", fix)
    if min(r.std) <= 0:
        raise bad("encoder_record.std", f"is {list(r.std)}", fix)
    for name in ("float32", "bfloat16", "float16"):
        digest = getattr(r.weights, name)
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise bad(f"encoder_record.weights.{name}", "is not a SHA-256 hex digest", fix)


def camera_from_json(text: str, source: str) -> CameraConfig:
    """A camera record stored as JSON (an ONNX graph's metadata), built and checked as strictly
    as config.yaml's."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"camera record is not JSON ({exc})", source=source,
                          fix="re-export the graph") from exc  # fmt: skip
    camera = build_dataclass(CameraConfig, data, source, "camera.")

    def bad(name: str, why: str, fix: str) -> ConfigError:
        return ConfigError(f"field '{name}' {why}", source=source, fix=fix)

    _validate_camera(camera, bad)
    return camera


def _validate_camera(c: CameraConfig, bad: Any) -> None:
    if len(c.crop_size) != 2 or min(c.crop_size) <= 0:
        raise bad("camera.crop_size", f"is {quote(list(c.crop_size))}", "give [height, width] > 0")
    if len(c.focal) != 2 or not all(math.isfinite(f) and f > 0 for f in c.focal):
        raise bad("camera.focal", f"is {quote(list(c.focal))}", "give [fx, fy] in pixels, > 0")
    (height, width), point = c.crop_size, c.principal_point
    if len(point) != 2 or not (-0.5 < point[0] < width - 0.5 and -0.5 < point[1] < height - 0.5):
        raise bad(
            "camera.principal_point",
            f"is {quote(list(point))}, not inside the {width}x{height} crop",
            "give [cx, cy] in the crop's pixels (pixel centres at integers)",
        )


def to_plain(value: Any) -> Any:
    """Dataclass-asdict output as YAML-safe plain types (tuples become lists)."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def build_dataclass(cls: type, data: Any, source: str, prefix: str = "") -> Any:
    """Strictly build dataclass cls (nested dataclasses included) from plain YAML/JSON data.

    Shared with training/config.py so training configs get the same errors as model configs.
    """
    where = prefix.rstrip(".") or "top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must be a mapping, got {type(data).__name__}",
            source=source,
            fix="use 'key: value' entries",
        )
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (
                f"did you mean '{prefix}{close[0]}'?"
                if close
                else f"known fields: {', '.join(names)}"
            )
            raise ConfigError(
                f"unknown field {quote(f'{prefix}{key}', 80)}",
                source=source,
                fix=f"remove it or correct the name ({hint})",
            )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], source, f"{prefix}{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(
                f"field '{prefix}{f.name}' is missing", source=source, fix="give it a value"
            )
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, source: str, name: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, source, f"{name}.")
    if origin is Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, source, name)

    def wrong(expected: str) -> ConfigError:
        return ConfigError(
            f"field '{name}' must be {expected}, got {quote(value)}",
            source=source,
            fix=f"set it to {expected}",
        )

    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise wrong("a list")
        items = [_coerce(args[0], v, source, f"{name}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise wrong("a mapping")
        return value
    raise TypeError(f"unsupported config type {tp} for {name}")
