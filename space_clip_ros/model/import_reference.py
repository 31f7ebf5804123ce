"""Import a checkpoint written by the SPACE-CLIP reference release (taewan2002/SPACE-CLIP).

`space-clip-import` (cli/import_reference.py) runs it from a command line:

    space-clip-import best_checkpoint.pt checkpoints/kitti_release --config kitti.yaml \\
        --backbone-out checkpoints/kitti_release_clip.safetensors

The release saves ``{'model': state_dict, 'optimizer': ..., 'epoch': n}`` with torch.save (the
EMA weights when the best epoch was the EMA's; ``module.`` prefixes when saved from DDP). Its
model holds the HF CLIPVisionModel tower under ``clip_vision_model.vision_model.*`` and the
decoder under its own names. This tool maps the decoder to ours, infers every hyper-parameter
from the tensor shapes (checked against the release's YAML when given) and writes a node
checkpoint (decoder.safetensors + config.yaml) with every setting explicit, including the
release's encoder resize (PIL bicubic on 8-bit images) and QuickGELU. ``--backbone-out`` also
writes the file's own CLIP tower in open_clip names, for ``backbone_weights``: the exact tower
the decoder was trained on, whatever open_clip's copy of the weights is.

The file is read with ``torch.load(weights_only=True)`` (through model/torch_files: a zip bomb
is refused from its declared sizes first): tensors and plain values only. Every weight must be
a finite real floating-point tensor and the tower's shapes a ViT's, and nothing is written
unless the result loads as the node loads it; the output gets the umask's modes, like the
checkpoint writer's. Exit 2 for a file that cannot be imported, 1 for a disk that fails.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from pathlib import Path
from typing import Any, Callable, Optional

import open_clip
import torch
import yaml
from safetensors.torch import save_file

from space_clip_ros.errors import ConfigError, InputError, RuntimeFailure, message, quote
from space_clip_ros.io.atomic import atomic_dir, atomic_path

from .canonical_camera import release_camera
from .checkpoint import load_checkpoint, write_checkpoint
from .config import BackboneConfig, CameraConfig, DecoderConfig, SpaceClipConfig, validate
from .decoder import SpaceClipDecoder
from .encoder_record import record_of_state
from .space_clip import resolve_layers
from .torch_files import load_torch_file
from .weight_checks import nonfinite_problem

log = logging.getLogger(__name__)

BACKBONE_PREFIX = "clip_vision_model.vision_model."
DDP_PREFIX = "module."
# Buffers HF keeps in some transformers versions; not weights.
IGNORED_BACKBONE_KEYS = ("embeddings.position_ids",)
# Integer buffers that are counters or indices, not weights (checked by name suffix).
INTEGER_BUFFERS = ("num_batches_tracked", "position_ids")
# Where the tower is staged for the load check when --backbone-out is not given.
TOWER_CHECK_FILE = ".tower-load-check.safetensors"
OUT_DIR_FIX = "choose a new directory or remove it"

# Reference decoder prefix -> ours ({i}: stage index); the suffix (weight, bias, running_mean,
# ...) is kept. The same table as the release data's decoder_key_map.txt.
DECODER_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("film_param_generators.{i}.0", "semantic.film.{i}.mlp.0"),
    ("film_param_generators.{i}.2", "semantic.film.{i}.mlp.2"),
    ("main_path_projections.{i}", "semantic.proj.{i}"),
    ("main_decoder_blocks.{i}.upsample_low.upsample", "stages.{i}.up.0"),
    ("main_decoder_blocks.{i}.upsample_low.conv.0", "stages.{i}.up.1.0"),
    ("main_decoder_blocks.{i}.upsample_low.conv.1", "stages.{i}.up.1.1"),
    ("main_decoder_blocks.{i}.skip_clip_gate.0", "stages.{i}.gates.0.conv"),
    ("main_decoder_blocks.{i}.skip_struct_gate.0", "stages.{i}.gates.1.conv"),
    ("main_decoder_blocks.{i}.fusion_conv.0", "stages.{i}.fuse.0"),
    ("main_decoder_blocks.{i}.fusion_conv.1", "stages.{i}.fuse.1"),
    ("main_decoder_blocks.{i}.fusion_conv.3.conv1", "stages.{i}.refine.body.0.0"),
    ("main_decoder_blocks.{i}.fusion_conv.3.norm1", "stages.{i}.refine.body.0.1"),
    ("main_decoder_blocks.{i}.fusion_conv.3.conv2", "stages.{i}.refine.body.2"),
    ("main_decoder_blocks.{i}.fusion_conv.3.norm2", "stages.{i}.refine.body.3"),
    ("structural_path_projections.{i}", "structural.proj.{i}"),
    ("structural_decoder_blocks.{i}.upsample_low.upsample", "structural.up.{i}.0"),
    ("structural_decoder_blocks.{i}.upsample_low.conv.0", "structural.up.{i}.1.0"),
    ("structural_decoder_blocks.{i}.upsample_low.conv.1", "structural.up.{i}.1.1"),
    ("structural_decoder_blocks.{i}.fusion_conv.0", "structural.fuse.{i}.0"),
    ("structural_decoder_blocks.{i}.fusion_conv.1", "structural.fuse.{i}.1"),
    ("depth_prediction_head.0", "head.0.0"),
    ("depth_prediction_head.1", "head.0.1"),
    ("depth_prediction_head.3", "head.1"),
    ("aux_depth_heads.{i}.0", "aux_heads.{i}.0.0"),
    ("aux_depth_heads.{i}.1", "aux_heads.{i}.0.1"),
    ("aux_depth_heads.{i}.3", "aux_heads.{i}.1"),
)

# HF CLIPVisionModel (under vision_model.) -> open_clip VisionTransformer ({i}: block index).
# q/k/v projections are not here: they are concatenated into attn.in_proj_* (QKV_RE).
BACKBONE_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("embeddings.class_embedding", "class_embedding"),
    ("embeddings.patch_embedding", "conv1"),
    ("embeddings.position_embedding.weight", "positional_embedding"),
    ("pre_layrnorm", "ln_pre"),
    ("post_layernorm", "ln_post"),
    ("encoder.layers.{i}.layer_norm1", "transformer.resblocks.{i}.ln_1"),
    ("encoder.layers.{i}.layer_norm2", "transformer.resblocks.{i}.ln_2"),
    ("encoder.layers.{i}.self_attn.out_proj", "transformer.resblocks.{i}.attn.out_proj"),
    ("encoder.layers.{i}.mlp.fc1", "transformer.resblocks.{i}.mlp.c_fc"),
    ("encoder.layers.{i}.mlp.fc2", "transformer.resblocks.{i}.mlp.c_proj"),
)
QKV_RE = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")

# The release's clip_model_name (HF hub id) -> open_clip architecture; all OpenAI, QuickGELU.
HF_TO_OPEN_CLIP = {
    "openai/clip-vit-base-patch32": "ViT-B-32",
    "openai/clip-vit-base-patch16": "ViT-B-16",
    "openai/clip-vit-large-patch14": "ViT-L-14",
    "openai/clip-vit-large-patch14-336": "ViT-L-14-336",
}


class ReferenceImportError(InputError):
    """The file is not a checkpoint of the reference release this tool can map."""


def _compile(rules: tuple[tuple[str, str], ...]) -> list[tuple[re.Pattern, str]]:
    compiled = []
    for ref, ours in rules:
        pattern = re.escape(ref).replace(r"\{i\}", r"(?P<i>\d+)")
        compiled.append((re.compile(pattern + r"(?P<suffix>(\..+)?)"), ours))
    return compiled


_DECODER_RULES = _compile(DECODER_KEY_MAP)
_BACKBONE_RULES = _compile(BACKBONE_KEY_MAP)
_HF_NAME_RULES = _compile(tuple((ours, ref) for ref, ours in BACKBONE_KEY_MAP))  # for messages


def _rename(key: str, rules: list[tuple[re.Pattern, str]]) -> Optional[str]:
    for pattern, ours in rules:
        match = pattern.fullmatch(key)
        if match:
            return ours.format(i=match.groupdict().get("i")) + match["suffix"]
    return None


def read_reference_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The model state dict of a release checkpoint, 'module.' prefixes stripped.

    Read through torch_files (weights_only, the torch >= 2.6 gate, and a zip whose records
    declare far more than the file holds refused before torch inflates them).
    """
    if not path.is_file():
        raise ReferenceImportError("checkpoint not found", source=path, fix="check the path")
    try:
        data = load_torch_file(path, field="checkpoint")
    except ConfigError:
        raise
    except Exception as exc:  # pickle, zip and torch errors all end here
        raise ReferenceImportError(
            f"not readable with torch.load(weights_only=True) ({type(exc).__name__}: "
            f"{quote(str(exc))})",
            source=path,
            fix="give a best_checkpoint.pt / last_checkpoint.pt written by the release",
        ) from exc
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReferenceImportError(
            "holds no 'model' state dict of tensors",
            source=path,
            fix="give a checkpoint written by the release's save_checkpoint",
        )
    odd = next((k for k in state if not isinstance(k, str)), None)
    if odd is not None:
        raise ReferenceImportError(
            f"the model state dict has a key {quote(odd, 80)} that is not a tensor name",
            source=path,
            fix="give a checkpoint written by the release's save_checkpoint",
        )
    return {k.removeprefix(DDP_PREFIX): v for k, v in state.items()}


def check_tensors(state: dict[str, torch.Tensor], source: object) -> None:
    """Every weight must be a finite real floating-point tensor.

    A complex or integer tensor used to be cast silently (the imaginary part or the fraction
    lost), and a NaN/inf one imported with exit 0 and made every depth NaN on the robot.
    Integer counters (BatchNorm's num_batches_tracked, HF's position_ids) are not weights.
    """
    for key, tensor in state.items():
        counter = key.endswith(INTEGER_BUFFERS) and not tensor.is_floating_point()
        if not counter and (tensor.is_complex() or not tensor.is_floating_point()):
            raise ReferenceImportError(
                f"tensor {quote(key, 120)} is {tensor.dtype}, not a real floating-point weight",
                source=source,
                fix="give the release's own checkpoint; a converted or edited file lost its "
                "weights' values",
            )
    problem = nonfinite_problem(state)
    if problem:
        raise ReferenceImportError(
            problem,
            source=source,
            fix="the run diverged or the file is damaged: import an earlier checkpoint "
            "(or the EMA weights) of a healthy run",
        )


def tower_geometry(tower: dict[str, torch.Tensor], source: object) -> tuple[int, int, int, int]:
    """(width, patch size, grid side, blocks) of an open_clip-named CLIP tower, checked.

    The shapes decide the whole config, so a 3-D patch embedding or a position embedding
    whose rows are not 1 + a square grid is refused here, naming the tensor, rather than
    written into a checkpoint the node cannot load.
    """

    def refuse(key: str, why: str) -> ReferenceImportError:
        shape = tuple(tower[key].shape) if key in tower else None
        return ReferenceImportError(
            f"CLIP tower tensor {BACKBONE_PREFIX}{_rename(key, _HF_NAME_RULES) or key} "
            f"{'is missing' if shape is None else f'has shape {shape}'}: {why}",
            source=source,
            fix="give the release's own checkpoint of an HF CLIPVisionModel tower",
        )

    for key in ("positional_embedding", "conv1.weight", "class_embedding"):
        if key not in tower:
            raise refuse(key, "the tower is incomplete")
    pos, conv = tower["positional_embedding"], tower["conv1.weight"]
    if pos.ndim != 2 or pos.shape[0] < 2 or pos.shape[1] < 1:
        raise refuse("positional_embedding", "expected (1 + grid x grid, width)")
    width = pos.shape[1]
    grid = math.isqrt(pos.shape[0] - 1)
    if grid * grid != pos.shape[0] - 1:
        raise refuse("positional_embedding", f"{pos.shape[0] - 1} patch positions are no square")
    if conv.ndim != 4 or conv.shape[:2] != (width, 3) or conv.shape[2] != conv.shape[3]:
        raise refuse("conv1.weight", f"expected ({width}, 3, patch, patch)")
    if tuple(tower["class_embedding"].shape) != (width,):
        raise refuse("class_embedding", f"expected ({width},)")
    layers = _count(tower, r"transformer\.resblocks\.(\d+)\.")
    if layers < 1:
        raise refuse("transformer.resblocks.0.ln_1.weight", "the tower has no blocks")
    return width, conv.shape[-1], grid, layers


def split_state(
    state: dict[str, torch.Tensor], source: object
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(decoder in our names, backbone in HF names without the vision_model prefix)."""
    decoder, backbone = {}, {}
    for key, tensor in state.items():
        if key.startswith(BACKBONE_PREFIX):
            backbone[key[len(BACKBONE_PREFIX) :]] = tensor
            continue
        ours = _rename(key, _DECODER_RULES)
        if ours is None:
            raise ReferenceImportError(
                f"tensor '{key}' is neither the CLIP tower nor a known decoder tensor",
                source=source,
                fix="this tool maps the release's SPACE-CLIP model; check the file's origin",
            )
        decoder[ours] = tensor
    if not backbone:
        raise ReferenceImportError(
            f"holds no '{BACKBONE_PREFIX}*' tensors (an HF CLIPVisionModel tower)",
            source=source,
            fix="give a release checkpoint (HF CLIPVisionModel or SiglipVisionModel tower)",
        )
    return decoder, backbone


def backbone_to_open_clip(hf: dict[str, torch.Tensor], source: object) -> dict[str, torch.Tensor]:
    """HF CLIPVisionModel tensors in open_clip VisionTransformer names, q/k/v concatenated."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, tensor in hf.items():
        if key in IGNORED_BACKBONE_KEYS:
            continue
        match = QKV_RE.fullmatch(key)
        if match:
            qkv.setdefault((match[1], match[3]), {})[match[2]] = tensor
            continue
        ours = _rename(key, _BACKBONE_RULES)
        if ours is None:
            raise ReferenceImportError(
                f"CLIP tower tensor '{BACKBONE_PREFIX}{key}' has no open_clip counterpart",
                source=source,
                fix="only plain HF CLIPVisionModel towers are imported",
            )
        out[ours] = tensor
    out.update(merge_qkv(qkv, "transformer.resblocks.{}.attn.in_proj_{}".format, source))
    return out


def merge_qkv(
    parts_by_block: dict[tuple[str, str], dict[str, torch.Tensor]],
    name: Callable[[str, str], str],
    source: object,
) -> dict[str, torch.Tensor]:
    """HF towers keep q, k and v projections apart; open_clip (in_proj) and timm (qkv) hold them
    as one tensor. parts_by_block: (block, weight|bias) -> {"q"|"k"|"v": tensor}; name(block,
    kind): the concatenated tensor's name in the target."""
    merged: dict[str, torch.Tensor] = {}
    for (block, kind), parts in parts_by_block.items():
        if set(parts) != {"q", "k", "v"}:
            raise ReferenceImportError(
                f"block {block} lacks some of q/k/v_proj.{kind}", source=source, fix="re-save it"
            )
        merged[name(block, kind)] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return merged


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m[1] for k in state for m in [regex.match(k)] if m})


def infer_config(
    decoder: dict[str, torch.Tensor],
    tower: dict[str, torch.Tensor],
    reference: Optional[dict[str, Any]],
    model_cfg: Optional[dict],
    source: object,
) -> SpaceClipConfig:
    """Every setting of the imported model, from the shapes, checked against the release YAML."""
    ref = reference or {}
    width, patch, grid, layers = tower_geometry(tower, source)
    image_size = grid * patch
    if model_cfg is not None:
        name = "imported-vit"
        if "quick_gelu" not in model_cfg:
            raise ConfigError(
                "does not say quick_gelu",
                source="--model-cfg",
                fix='add "quick_gelu": true (the release\'s OpenAI towers) or false',
            )
        quick_gelu, pretrained = bool(model_cfg["quick_gelu"]), None
    else:
        name = _open_clip_name(width, patch, layers, image_size, ref, source)
        quick_gelu, pretrained = True, "openai"
    if "clip_input_size" in ref and ref["clip_input_size"] != image_size:
        raise ConfigError(
            f"clip_input_size {ref['clip_input_size']} but the tower's positions are for "
            f"{image_size}x{image_size}",
            source=source,
            fix="use the YAML the checkpoint was trained with",
        )
    dec = infer_decoder_config(decoder, layers, ref, source)
    backbone = BackboneConfig(
        model_name=name,
        pretrained=pretrained,
        model_cfg=model_cfg,
        quick_gelu=quick_gelu,
        mean=tuple(open_clip.OPENAI_DATASET_MEAN),
        std=tuple(open_clip.OPENAI_DATASET_STD),
        input_size=(image_size, image_size),
        input_resize="pil_bicubic_uint8",
    )
    config = SpaceClipConfig(backbone=backbone, decoder=dec)
    validate(config, str(source))
    return resolve_layers(config, layers)


def infer_decoder_config(
    decoder: dict[str, torch.Tensor], layers: int, ref: dict[str, Any], source: object
) -> DecoderConfig:
    """The release decoder's settings from its tensors (any tower family), checked against the
    release YAML's (ref, possibly empty) for an L-block tower."""
    has_film = "semantic.film.0.mlp.0.weight" in decoder
    has_structural = "structural.proj.0.weight" in decoder
    semantic = [decoder[f"semantic.proj.{i}.weight"].shape[0] for i in range(4)]
    structural = (
        [decoder[f"structural.proj.{i}.weight"].shape[0] for i in range(3)]
        if has_structural
        else semantic[:3]
    )
    dec = DecoderConfig(
        semantic_layers=list(
            ref.get("main_path_indices", [layers, 3 * layers // 4, layers // 2, layers // 4])
        ),
        structural_layers=list(ref.get("structural_path_indices", [2, 1, 0])),
        semantic_channels=semantic,
        structural_channels=structural,
        film_hidden=decoder["semantic.film.0.mlp.0.weight"].shape[0] if has_film else 256,
        use_film=has_film,
        use_structural=has_structural,
        dropout=float(ref.get("decoder_dropout", 0.1)),
        head_hidden=decoder["head.0.0.weight"].shape[0],
        aux_heads=_count(decoder, r"aux_heads\.(\d+)\."),
    )
    declared = {
        "decoder_channels": (semantic, list),
        "film_param_hidden_dim": (dec.film_hidden, int),
        "use_film": (has_film, bool),
        "use_structural_pathway": (has_structural, bool),
    }
    for key, (found, kind) in declared.items():
        if key in ref and kind(ref[key]) != found and (key != "film_param_hidden_dim" or has_film):
            raise ConfigError(
                f"{key} is {ref[key]!r} but the checkpoint's tensors give {found!r}",
                source=source,
                fix="use the YAML the checkpoint was trained with, or import without --config",
            )
    return dec


def _open_clip_name(
    width: int, patch: int, layers: int, image_size: int, ref: dict, source: object
) -> str:
    """The open_clip architecture of an HF OpenAI tower, from the YAML or from its shapes."""
    hf_name = ref.get("clip_model_name")
    if hf_name is not None and hf_name not in HF_TO_OPEN_CLIP:
        raise ConfigError(
            f"clip_model_name {hf_name!r} is not an OpenAI CLIP tower this tool knows",
            source=source,
            fix=f"use one of {', '.join(HF_TO_OPEN_CLIP)}, or describe the tower with --model-cfg",
        )
    for hf, name in HF_TO_OPEN_CLIP.items():
        vision = open_clip.get_model_config(name)["vision_cfg"]
        shapes = (vision["width"], vision["patch_size"], vision["layers"], vision["image_size"])
        if (hf_name is None or hf == hf_name) and shapes == (width, patch, layers, image_size):
            return name
    raise ConfigError(
        f"the CLIP tower (width {width}, patch {patch}, {layers} blocks, {image_size} px) is "
        f"not {hf_name or 'a known OpenAI tower'}",
        source=source,
        fix="give the open_clip model config of the tower with --model-cfg FILE.json",
    )


def import_reference(
    checkpoint: Path,
    out_dir: Path,
    reference_yaml: Optional[Path] = None,
    backbone_out: Optional[Path] = None,
    model_cfg: Optional[dict] = None,
    dataset: Optional[str] = None,
) -> SpaceClipConfig:
    """Write out_dir (decoder.safetensors + config.yaml) and optionally the tower; atomically.

    Nothing is written unless the result loads as the node loads it (checkpoint.load_checkpoint
    with the imported tower as backbone_weights). dataset (kitti | nyu, or the YAML's
    `dataset`) records the release's training camera.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError("exists and is not empty", source=out_dir, fix=OUT_DIR_FIX)
    reference = read_mapping(reference_yaml) if reference_yaml else None
    state = read_reference_checkpoint(checkpoint)
    check_tensors(state, checkpoint)
    decoder, hf_tower = split_state(state, checkpoint)
    from .import_siglip import is_siglip_tower, siglip_tower_and_config  # imports this module

    if is_siglip_tower(hf_tower):  # the release's SigLIP configs (configs/nyu_siglip.yaml)
        tower, config = siglip_tower_and_config(
            decoder, hf_tower, reference, model_cfg, checkpoint
        )
    else:
        tower = backbone_to_open_clip(hf_tower, checkpoint)
        config = infer_config(decoder, tower, reference, model_cfg, checkpoint)
        activation = "quick_gelu" if config.backbone.quick_gelu else "gelu"
        config.encoder_record = record_of_state(
            tower, "clip", config.backbone.mean, config.backbone.std, activation, checkpoint.name
        )
    config.camera = release_camera_record(reference, dataset, checkpoint)
    validate(config, str(checkpoint))
    # Build the decoder the config describes and load the mapped tensors strictly: a missing,
    # extra or misshapen tensor fails here, not on the robot.
    built = SpaceClipDecoder(config.encoder_record.width, config.decoder)
    try:
        built.load_state_dict(decoder, strict=True)
    except RuntimeError as exc:
        raise ReferenceImportError(
            f"the decoder tensors do not fit the inferred config: {quote(str(exc), 600)}",
            source=checkpoint,
            fix="check that the file is a SPACE-CLIP checkpoint of the release",
        ) from exc
    try:
        write_import(built.state_dict(), tower, config, out_dir, backbone_out, checkpoint)
    except OSError as exc:  # a full disk, a read-only or vanished folder
        raise RuntimeFailure(
            f"cannot write the imported checkpoint ({exc.strerror or type(exc).__name__}); "
            "nothing was written",
            source=exc.filename or out_dir,
            fix="free disk space or choose another output folder, then run it again",
        ) from exc
    log.info("imported %s -> %s (%s)", checkpoint, out_dir, config.backbone.model_name)
    return config


# The release's input_height x input_width (its configs/kitti.yaml and nyu.yaml).
RELEASE_CROPS = {"kitti": (352, 704), "nyu": (480, 640)}


def release_camera_record(
    reference: Optional[dict], dataset: Optional[str], source: object
) -> Optional[CameraConfig]:
    """The camera the release trained the file under, from --dataset or the YAML's `dataset`
    (crop size from the YAML's input_height/input_width); None, with a warning, when neither
    says: the tensors cannot tell a KITTI decoder from an NYU one."""
    ref = reference or {}
    declared = str(ref["dataset"]).lower() if "dataset" in ref else None
    name = dataset or declared
    if name is None:
        log.warning(
            message(
                "no camera recorded (inference will not map input cameras)",
                source=source,
                fix="give --dataset kitti|nyu or the release's --config YAML",
            )
        )
        return None
    if name not in RELEASE_CROPS or (declared and declared != name):
        raise ConfigError(
            f"dataset {name!r}" + (f" but the YAML says {declared!r}" if declared else ""),
            source=source,
            fix=f"use one of {', '.join(RELEASE_CROPS)}, the dataset the file was trained on",
        )
    crop = (
        ref.get("input_height", RELEASE_CROPS[name][0]),
        ref.get("input_width", RELEASE_CROPS[name][1]),
    )
    if not all(isinstance(side, int) and side > 0 for side in crop):
        raise ConfigError(
            f"input_height/input_width are {crop}", source=source, fix="give positive integers"
        )
    return release_camera(name, crop)


def write_import(
    decoder_state: dict[str, torch.Tensor],
    tower: dict[str, torch.Tensor],
    config: SpaceClipConfig,
    out_dir: Path,
    backbone_out: Optional[Path],
    source: Path,
) -> None:
    """Stage the checkpoint (and the tower), prove it loads, then rename it all into place
    (io/atomic: the folder first, then the tower file).

    The tower file gets the umask's mode (safetensors writes 0600), like every file the
    checkpoint writer makes, so the robot's service user can read what an administrator
    imported. Without --backbone-out the tower is staged beside the staged checkpoint only for
    the load check, and goes with the staging folder.
    """
    with contextlib.ExitStack() as stack:
        if backbone_out is not None:
            backbone_out.parent.mkdir(parents=True, exist_ok=True)
            tower_file = stack.enter_context(atomic_path(backbone_out, fix_mode=True))
        staged = stack.enter_context(
            atomic_dir(out_dir, exists_fix=OUT_DIR_FIX, replace_empty=True)
        )
        if backbone_out is None:
            tower_file = staged.parent / TOWER_CHECK_FILE
        write_checkpoint(decoder_state, config, staged, {"imported_from": str(source)})
        _save_tower(tower, tower_file)
        _check_loads(staged, tower_file, source)
    if backbone_out is not None:
        log.info("CLIP tower written to %s (use it as backbone_weights)", backbone_out)


def _save_tower(tower: dict[str, torch.Tensor], path: Path) -> None:
    """The CLIP tower as an open_clip state dict ('visual.*')."""
    save_file({f"visual.{k}": v.contiguous() for k, v in tower.items()}, str(path))


def _check_loads(checkpoint_dir: Path, tower_file: Path, source: Path) -> None:
    """The staged checkpoint must load as the node loads it, or the import fails."""
    try:
        load_checkpoint(checkpoint_dir, backbone_weights=str(tower_file))
    except ConfigError as exc:
        raise ReferenceImportError(
            f"the imported checkpoint would not load on the node: {exc}",
            source=source,
            fix="check that the file is a SPACE-CLIP checkpoint of the release",
        ) from exc


def read_mapping(path: Path) -> dict:
    """A YAML (or JSON) file holding a mapping: the release's config, an open_clip model config."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"not a readable YAML file ({exc})", source=path, fix="check it"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError("is not a mapping", source=path, fix="give the release's configs/*.yaml")
    return data
