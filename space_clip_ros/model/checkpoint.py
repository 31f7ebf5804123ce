"""Checkpoint I/O: decoder-only safetensors + the config that built it.

A checkpoint is a directory holding decoder.safetensors (tensors only: nothing is unpickled, so
loading a downloaded file is safe) and config.yaml (backbone name + weights source, every
decoder hyper-parameter and the record of the encoder the decoder was trained on). The backbone
is never stored: it is frozen and comes from open_clip. Loading checks the two files against
each other and names the file, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from space_clip_ros.errors import quote
from space_clip_ros.io.atomic import atomic_paths

from .backbone import BackboneWeightsError
from .config import ConfigError, SpaceClipConfig
from .decoder import SpaceClipDecoder
from .encoder_record import record_of_backbone
from .space_clip import SpaceClip, build_model, resolve_layers
from .torch_files import load_safetensors

log = logging.getLogger(__name__)

WEIGHTS_FILE = "decoder.safetensors"
CONFIG_FILE = "config.yaml"
FORMAT_TAG = "space_clip_ros.decoder"


class CheckpointError(ConfigError):
    """A checkpoint cannot be loaded; the message names the file, the key and the fix."""


def save_checkpoint(
    model: SpaceClip, directory: Union[str, Path], metadata: dict | None = None
) -> Path:
    """Write decoder.safetensors + config.yaml into directory (created if needed).

    config.yaml carries the encoder record: the one the model was loaded with when it has one
    (it says what the decoder was trained on, whatever tower runs it now), else the record of
    the tower the model runs, measured now (model/encoder_record.py).
    """
    config = model.config
    if config.encoder_record is None:
        config = dataclasses.replace(config, encoder_record=record_of_backbone(model.backbone))
    return write_checkpoint(model.decoder.state_dict(), config, directory, metadata)


def write_checkpoint(
    decoder_state: dict[str, torch.Tensor],
    config: SpaceClipConfig,
    directory: Union[str, Path],
    metadata: dict | None = None,
) -> Path:
    """The checkpoint files for a decoder state and the config that builds it (float32 on disk).

    Both files are written under temporary names and renamed together when complete
    (io/atomic.atomic_paths): weights never sit beside another run's config. safetensors
    creates its files 0600; the weights get the umask's mode like config.yaml, so another user (the
    node's service account) can read what training wrote.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in decoder_state.items()
    }
    meta = {"format": FORMAT_TAG, "config": json.dumps(config.to_dict())}
    meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    files = [directory / WEIGHTS_FILE, directory / CONFIG_FILE]
    with atomic_paths(files, fix_mode=True) as (weights, config_file):  # both or neither
        save_file(state, str(weights), metadata=meta)
        config.save(config_file)
    return directory


def resolve_checkpoint(path: Union[str, Path]) -> tuple[Path, Path]:
    """(weights file, config file) for a checkpoint directory or its .safetensors file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(
            "checkpoint not found",
            source=path,
            fix=f"point to a directory holding {WEIGHTS_FILE} and {CONFIG_FILE} (written by "
            "training/export.py), or leave the checkpoint empty to run the untrained model",
        )
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    config = weights.parent / CONFIG_FILE
    if not weights.is_file():
        raise CheckpointError(
            "missing", source=weights, fix=f"the checkpoint directory must contain {WEIGHTS_FILE}"
        )
    if weights.suffix != ".safetensors":
        raise CheckpointError(
            "not a .safetensors file",
            source=weights,
            fix="convert it with training/export.py; pickled torch files are never loaded by "
            "the node",
        )
    if not config.is_file():
        raise CheckpointError(
            "missing",
            source=config,
            fix=f"put the {CONFIG_FILE} written with these weights beside {weights.name}",
        )
    return weights, config


def read_checkpoint(
    path: Union[str, Path],
) -> tuple[SpaceClipConfig, dict[str, torch.Tensor], Path, Path]:
    """(config, decoder tensors, weights file, config file), each file validated on its own."""
    weights, config_path = resolve_checkpoint(path)
    try:
        config = SpaceClipConfig.load(config_path)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from exc
    try:
        state = load_safetensors(weights)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"not a readable safetensors file ({quote(str(exc))})",
            source=weights,
            fix="re-export or re-download it",
        ) from exc
    _check_values(state, weights)
    return config, state, weights, config_path


def load_checkpoint(
    path: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    backbone_weights: str | None = None,
) -> SpaceClip:
    """Build the model from config.yaml and load the decoder tensors, strictly."""
    config, state, weights, config_path = read_checkpoint(path)
    try:
        model = build_model(config, backbone_weights=backbone_weights)
    except BackboneWeightsError:
        raise  # names the weights file and the setting that chose it
    except ConfigError as exc:  # raised while building: the config file is the one to fix
        raise CheckpointError(f"{config_path}: {exc}") from exc
    _load_decoder_state(model.decoder, model.config, state, weights, config_path)
    log.info("loaded checkpoint %s (%s)", weights, config.backbone.model_name)
    return model.to(device).eval()


def load_decoder(
    path: Union[str, Path], width: int, num_layers: int
) -> tuple[SpaceClipConfig, SpaceClipDecoder]:
    """The decoder of a checkpoint alone, for a tower of `width` and `num_layers` blocks that
    the caller already runs (space_clip_ros.shared): no backbone is built or loaded."""
    return build_decoder(*read_checkpoint(path), width=width, num_layers=num_layers)


def build_decoder(
    config: SpaceClipConfig,
    state: dict[str, torch.Tensor],
    weights: Path,
    config_path: Path,
    *,
    width: int,
    num_layers: int,
) -> tuple[SpaceClipConfig, SpaceClipDecoder]:
    """(config with its layer lists resolved for the tower, decoder in eval()) from what
    read_checkpoint returned."""
    try:
        config = resolve_layers(config, num_layers)
    except ConfigError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from exc
    decoder = SpaceClipDecoder(width, config.decoder)
    _load_decoder_state(decoder, config, state, weights, config_path, width)
    return config, decoder.eval()


def _load_decoder_state(
    decoder: SpaceClipDecoder,
    config: SpaceClipConfig,
    state: dict[str, torch.Tensor],
    weights: Path,
    config_path: Path,
    width: Optional[int] = None,
) -> None:
    expected = decoder.state_dict()
    state = upgrade_decoder_state(state, expected, weights)
    _check_state(expected, state, config, width, weights, config_path)
    decoder.load_state_dict(state, strict=True)


def upgrade_decoder_state(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: object
) -> dict[str, torch.Tensor]:
    """state with decoder layouts of earlier versions converted to the current one.

    Decoders saved before the aux heads' last conv became 1x1 (as in the SPACE-CLIP release) hold
    a 3x3 kernel there: its centre tap is kept. The aux heads only supervise training, so the
    depth the model predicts is unchanged; only a resumed training's aux terms start from the
    centre tap.
    """
    upgraded = dict(state)
    for key, tensor in state.items():
        want = expected.get(key)
        if (
            key.startswith("aux_heads.")
            and want is not None
            and tensor.ndim == 4
            and tensor.shape[-2:] == (3, 3)
            and want.shape[-2:] == (1, 1)
            and tensor.shape[:2] == want.shape[:2]
        ):
            upgraded[key] = tensor[..., 1:2, 1:2].contiguous()
            log.warning(
                "%s: %s is a 3x3 aux-head kernel of an earlier version: kept its centre tap",
                source,
                key,
            )
    return upgraded


def _check_state(
    expected: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    config: SpaceClipConfig,
    width: Optional[int],
    weights: Path,
    config_path: Path,
) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    fix = (
        f"use the {CONFIG_FILE} that was saved with these weights (the two must come from the "
        "same run)"
    )
    if missing:
        raise CheckpointError(
            f"missing key '{missing[0]}' ({len(missing)} missing) required by {config_path} "
            f"(use_film={config.decoder.use_film}, "
            f"use_structural={config.decoder.use_structural})",
            source=weights,
            fix=fix,
        )
    if unexpected:
        raise CheckpointError(
            f"unexpected key {quote(unexpected[0], 120)} ({len(unexpected)} unexpected) not "
            f"built by {config_path}",
            source=weights,
            fix=fix,
        )
    tower = f"backbone '{config.backbone.model_name}'" if width is None else "the encoder"
    width = width if width is not None else expected["semantic.proj.0.weight"].shape[1]
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"key '{key}' has shape {tuple(state[key].shape)} but {config_path} builds "
                f"{tuple(tensor.shape)} ({tower}, width {width})",
                source=weights,
                fix=fix,
            )
        if state[key].is_floating_point() != tensor.is_floating_point():
            raise CheckpointError(
                f"key '{key}' has dtype {state[key].dtype} where the decoder holds {tensor.dtype}",
                source=weights,
                fix="re-export the checkpoint with training/export.py (weights are stored as "
                "float32)",
            )


def _check_values(state: dict[str, torch.Tensor], weights: Path) -> None:
    """Refuse NaN/inf weights: such a model loads, reports itself trained and outputs only NaN."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"key {quote(key, 120)} holds {bad} NaN/inf value(s) of {tensor.numel()}",
                source=weights,
                fix="the training run diverged or the file was damaged; export an earlier "
                "checkpoint (or the EMA weights) of a healthy run",
            )
