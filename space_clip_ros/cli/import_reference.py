"""`space-clip-import`: a SPACE-CLIP reference-release checkpoint as a node checkpoint
(model/import_reference.py does the work).

Exit 2 for a file that cannot be imported, 1 for a disk that fails; nothing is written unless
the result loads as the node loads it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from space_clip_ros.errors import run_tool
from space_clip_ros.model.import_reference import RELEASE_CROPS, import_reference, read_mapping

PROG = "space-clip-import"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Import a SPACE-CLIP reference-release checkpoint as a node checkpoint.",
    )
    parser.add_argument("checkpoint", type=Path, help="best_checkpoint.pt written by the release")
    parser.add_argument(
        "out_dir", type=Path, help="new directory: decoder.safetensors + config.yaml"
    )
    parser.add_argument(
        "--config", type=Path, help="the release's YAML it was trained with (checked against)"
    )
    parser.add_argument(
        "--backbone-out",
        type=Path,
        help="also write the file's CLIP tower (open_clip names, safetensors): backbone_weights",
    )
    parser.add_argument(
        "--model-cfg",
        type=Path,
        help="open_clip model config JSON for a tower that is not a known OpenAI one",
    )
    parser.add_argument(
        "--dataset",
        choices=sorted(RELEASE_CROPS),
        help="what the file was trained on, for its camera record (default: the YAML's)",
    )
    return parser


def run(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    model_cfg = read_mapping(args.model_cfg) if args.model_cfg else None  # JSON is YAML
    config = import_reference(
        args.checkpoint, args.out_dir, args.config, args.backbone_out, model_cfg, args.dataset
    )
    print(
        f"{args.out_dir}: {config.backbone.model_name}, input {list(config.backbone.input_size)}"
    )
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_tool(PROG, run, argv, log_level=logging.INFO)


if __name__ == "__main__":
    raise SystemExit(main())
