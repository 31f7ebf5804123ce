"""The golden regression fixture in test/data/golden: a tiny checkpoint, one image, its depth.

Tests load it with `load_golden()` (the `golden` fixture in conftest.py) and check that the
estimator, the ONNX export, the ROS node and the image CLI all reproduce the committed depth,
so a change to the checkpoint format or to the numbers the model computes fails a test instead
of passing unnoticed. The backbone is committed too (backbone.safetensors), so the fixture does
not depend on how a torch version initialises random weights.

Regenerate it only for an intended change of the numbers or of the format, and say so in the
commit:

    python -m testing.golden

It renders one 96x64 frame of the procedural street, builds the tiny SPACE-CLIP
(testing.tiny), fits its decoder to that frame's depth for a few hundred steps (so
the committed depth varies across the image and drift shows; an untrained decoder outputs
~10 m everywhere), and writes the files below (about 0.4 MB in all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "test" / "data" / "golden"
CHECKPOINT_DIR = GOLDEN_DIR / "checkpoint"  # decoder.safetensors + config.yaml
BACKBONE_FILE = GOLDEN_DIR / "backbone.safetensors"  # the tiny tower's weights (fp16 values)
IMAGE_FILE = GOLDEN_DIR / "image.png"  # 96x64 RGB
DEPTH_FILE = GOLDEN_DIR / "depth.npy"  # float32 metres, fp32 on the CPU
# fp32 on the CPU reproduces the depth to ~1e-6 m on one machine; the margin covers other CPUs'
# kernels (vector widths, summation order) while a real change moves metres.
ATOL_M = 1e-4
RTOL = 1e-5

WIDTH, HEIGHT = 96, 64
FIT_STEPS = 300
SEED = 0


@dataclass(frozen=True)
class Golden:
    checkpoint: Path
    backbone: Path
    image_file: Path
    image: np.ndarray  # HxWx3 uint8 RGB
    depth: np.ndarray  # HxW float32 metres

    def assert_matches(
        self,
        depth: np.ndarray,
        atol: float = ATOL_M,
        rtol: float = RTOL,
        expected: np.ndarray | None = None,
    ) -> None:
        """Fail with the largest deviation when `depth` is not the committed depth (or
        `expected`, derived from it, e.g. range-masked; NaN must match NaN)."""
        expected = self.depth if expected is None else expected
        np.testing.assert_allclose(depth, expected, atol=atol, rtol=rtol, equal_nan=True)


def load_golden() -> Golden:
    from PIL import Image

    with Image.open(IMAGE_FILE) as image:
        rgb = np.asarray(image.convert("RGB"))
    return Golden(CHECKPOINT_DIR, BACKBONE_FILE, IMAGE_FILE, rgb, np.load(DEPTH_FILE))


def make_golden() -> None:
    """Write every file of the fixture (see the module docstring)."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from space_clip_ros.inference import DepthEstimator
    from space_clip_ros.model import build_model, save_checkpoint
    from space_clip_ros.scenes.street import DriveConfig, SyntheticDrive
    from testing.tiny import tiny_config

    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # a few seconds either way; no thread contention on a busy machine
    frame = SyntheticDrive(DriveConfig(width=WIDTH, height=HEIGHT, seed=SEED)).frame(0)
    model = build_model(tiny_config())
    # Backbone values rounded to fp16 (half the file size) and used as such: exactly
    # representable in fp32, so the model loaded from the file is the model fitted here.
    visual = model.backbone.visual
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in visual.state_dict().items()}
    visual.load_state_dict(half)

    image = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255.0
    target = torch.from_numpy(frame.depth)[None, None]
    valid = target > 0  # sky has no depth
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=3e-3)
    model.decoder.train()
    for _ in range(FIT_STEPS):
        optimizer.zero_grad()
        loss = (model(image) - target).abs()[valid].mean()
        loss.backward()
        optimizer.step()
    model.eval()

    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, CHECKPOINT_DIR)
    save_file(half, str(BACKBONE_FILE))
    Image.fromarray(frame.rgb).save(IMAGE_FILE)
    estimator = DepthEstimator.from_checkpoint(
        CHECKPOINT_DIR, device="cpu", backbone_weights=str(BACKBONE_FILE)
    )
    depth = estimator.predict(np.asarray(Image.open(IMAGE_FILE).convert("RGB")))
    np.save(DEPTH_FILE, depth.astype(np.float32))
    inside = frame.depth > 0
    print(
        f"wrote {GOLDEN_DIR}: final L1 {loss.item():.2f} m, depth {depth.min():.2f}.."
        f"{depth.max():.2f} m, mean |error| on the street "
        f"{np.abs(depth - frame.depth)[inside].mean():.2f} m"
    )


if __name__ == "__main__":
    make_golden()
