"""Turn a training run into what deployments load: the node's checkpoint and/or an ONNX model.

    # node checkpoint (decoder.safetensors + config.yaml) from a run's resumable state, EMA weights
    python -m training.export --run runs/kitti --weights ema --out checkpoints/kitti_ema
    # whole model (frozen backbone + decoder) to ONNX, checked against PyTorch with onnxruntime
    python -m training.export --checkpoint runs/kitti/checkpoints/best_ema --onnx space_clip.onnx

The trainer already writes node checkpoints (``checkpoints/{last,best}[_ema]``); this tool
converts any ``state_*.pt`` (e.g. a preempted run) and exports ONNX. Every node checkpoint
carries the record of the encoder its decoder was trained on (config.yaml ``encoder_record``,
checked by space_clip_ros.shared.attach); re-exporting a checkpoint written before records
existed (``--checkpoint OLD --out NEW``) adds one, measured from the tower its config builds.

The ONNX graph takes ``image``: float32 RGB in [0, 1], shape (batch, 3, H, W) at the encoder
input size (config backbone.input_size, 224x224 for the paper's ViT-B/16; resize frames to it
first), and returns ``depth``: (batch, 1, H, W) metres at that size. The batch axis is dynamic.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

from space_clip_ros.errors import UsageError, run_tool
from space_clip_ros.model import (
    CheckpointError,
    SpaceClip,
    SpaceClipConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from space_clip_ros.model.checkpoint import CONFIG_FILE, upgrade_decoder_state
from space_clip_ros.model.onnx_export import check_onnx, export_onnx
from training.state import STATE_LAST, load_state

PROG = "python -m training.export"
LOG = logging.getLogger("export")
EMA_PREFIX = "module."


def model_from_state(
    state_path: Path, weights: str = "ema", backbone_weights: Optional[str] = None
) -> SpaceClip:
    """Rebuild the model of a training state and load its raw or EMA decoder weights."""
    state = load_state(state_path)
    model = build_model(
        SpaceClipConfig.from_dict(state["config"]["model"], source=f"{state_path} (config.model)"),
        backbone_weights=backbone_weights,
    )
    if weights == "ema":
        if state.get("ema") is None:
            raise CheckpointError(
                "holds no EMA weights (run.ema_decay was 0)",
                source=state_path,
                fix="use --weights raw",
            )
        decoder = {
            k[len(EMA_PREFIX) :]: v for k, v in state["ema"].items() if k.startswith(EMA_PREFIX)
        }
    else:
        decoder = state["decoder"]
    decoder = upgrade_decoder_state(decoder, model.decoder.state_dict(), state_path)
    model.decoder.load_state_dict(decoder, strict=True)
    return model.eval()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Export a trained SPACE-CLIP: node checkpoint and/or ONNX."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help=f"training out_dir (reads its {STATE_LAST})")
    source.add_argument(
        "--state", type=Path, help="a training state file written by training/train.py"
    )
    source.add_argument("--checkpoint", type=Path, help="a node-format checkpoint directory")
    parser.add_argument(
        "--weights",
        choices=["ema", "raw"],
        default="ema",
        help="which decoder weights of a training state",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the node checkpoint (decoder.safetensors + config.yaml) here",
    )
    parser.add_argument("--onnx", type=Path, help="write the whole model as ONNX here")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument(
        "--backbone-weights",
        help="local CLIP weights file instead of the config's pretrained source",
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Exit 2 (nothing written) for a command line, run, state or checkpoint that cannot be
    used."""
    return run_tool(PROG, run, argv, usage=build_parser().format_usage, log_level=logging.INFO)


def run(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.out and not args.onnx:
        raise UsageError("nothing to do", fix="give --out (node checkpoint) and/or --onnx")
    if args.opset < 17:
        raise UsageError(f"--opset {args.opset} is too old", fix="use 17 or newer")
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint, backbone_weights=args.backbone_weights)
    else:
        model = model_from_state(
            args.state or args.run / STATE_LAST, args.weights, args.backbone_weights
        )
    if args.out:
        # The encoder record (config.yaml) says what the decoder was trained on: a checkpoint's
        # own record is kept; a training state's tower is measured now, so --backbone-weights
        # given with --run/--state must be the weights training used.
        kept = model.config.encoder_record is not None
        save_checkpoint(model, args.out)
        record = SpaceClipConfig.load(Path(args.out) / CONFIG_FILE).encoder_record
        print(
            f"wrote node checkpoint {args.out} (encoder record "
            f"{'kept from the checkpoint' if kept else 'measured from the backbone'}: "
            f"{record.source}, weights sha256 {record.weights.float32[:12]}...)"
        )
    if args.onnx:
        export_onnx(model, args.onnx, args.opset)
        error = check_onnx(model, args.onnx)
        h, w = model.input_size
        print(
            f"wrote {args.onnx}: input 'image' (batch, 3, {h}, {w}) RGB [0,1] -> 'depth' (batch, "
            f"1, {h}, {w}) m; "
            f"onnxruntime vs PyTorch max abs error {error:.3g} m"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
