"""Decode cost per frame for every camera encoding the node reads (and jpeg/png).

The time from a message's bytes to the HxWx3 uint8 image the model reads, per encoding, at
KITTI's 1242x375 and at 1920x1080, on one OpenCV thread (a per-core figure that does not depend
on how busy the machine's other cores are). Prints a Markdown table for bench/RESULTS.md.

    python bench/bench_decode.py                    # both sizes, every encoding, 30 repeats
    python bench/bench_decode.py --sizes 640x480 --repeats 100 --threads 0   # 0: OpenCV default
    python bench/bench_decode.py --hostile          # the bounds on work: scans, aspect ratio

--hostile times what the decoding bounds are for: a 3840x2160 progressive JPEG with repeated
scans (decoded by libjpeg-turbo up to MAX_JPEG_SCANS, refused by the marker walk above it) and
the resizes to and from the encoder for frames of extreme aspect ratio (refused above
MAX_ASPECT_RATIO), each beside an ordinary 4K frame.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image as PILImage

from space_clip_ros.cli.arguments import parse_size
from space_clip_ros.io.image_containers import MAX_JPEG_SCANS
from space_clip_ros.io.image_decoding import (
    INPUT_ENCODINGS,
    MAX_ASPECT_RATIO,
    ImageDecodeError,
    decode_compressed,
    decode_raw,
)
from space_clip_ros.runtime import cpu_model_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testing/ is not installed

from testing.image_encoding import encode_rgb  # noqa: E402

FRAME_BUDGET_MS = 1000.0 / 30.0  # a 30 fps camera


def scene(width: int, height: int) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a camera frame, not like a flat image."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 200 // width, yy * 200 // height, (xx + yy) * 100 // (width + height)])
    noise = np.random.default_rng(0).integers(0, 40, (3, height, width))
    return (base + noise).transpose(1, 2, 0).astype(np.uint8)


def decoders(rgb: np.ndarray) -> dict[str, Callable[[], object]]:
    """name -> a call decoding one frame of that kind, as the node does it."""
    h, w = rgb.shape[:2]
    out: dict[str, Callable[[], object]] = {}
    for encoding in INPUT_ENCODINGS:
        if encoding in ("nv12", "nv21") and h % 2:
            continue  # 4:2:0 needs an even height (KITTI's 375 is odd)
        f = encode_rgb(rgb, encoding)
        out[encoding] = lambda f=f: decode_raw(
            f.data, f.encoding, f.width, f.height, f.step, f.is_bigendian, 1 << 30
        )
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, format=fmt)
        data = buf.getvalue()
        out[f"compressed {fmt.lower()}"] = lambda d=data, k=fmt: decode_compressed(
            d, k.lower(), 1 << 30
        )
    return out


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # first call: allocations, code paths warmed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def with_scans(width: int, height: int, scans: int) -> bytes:
    """A flat progressive JPEG whose last (tiny, EOB-run) scan repeats until it has `scans`."""
    buf = io.BytesIO()
    PILImage.new("RGB", (width, height), (128, 128, 128)).save(
        buf, format="JPEG", progressive=True
    )
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * (scans - data.count(b"\xff\xda")) + b"\xff\xd9"


def cpu_ms(call: Callable[[], object]) -> tuple[float, str]:
    """CPU time of one call (single-threaded here, so the neighbours on a shared machine do not
    count) and whether the frame was decoded or refused."""
    start = time.process_time()
    try:
        call()
        outcome = "decoded"
    except ImageDecodeError as exc:
        outcome = f"refused ({exc.reason})"
    return (time.process_time() - start) * 1000.0, outcome


def hostile() -> None:
    """Decode work against scans, and encoder resizes against aspect ratio."""
    import torch

    from space_clip_ros.model.space_clip import resize_bilinear

    torch.set_num_threads(1)
    limit = 1 << 30
    print("\n| 3840x2160 progressive JPEG | bytes | CPU ms | outcome |\n|---|---:|---:|---|")
    for scans in (10, MAX_JPEG_SCANS, MAX_JPEG_SCANS + 1, 20_000):
        data = with_scans(3840, 2160, scans)
        runs = [cpu_ms(lambda d=data: decode_compressed(d, "jpeg", limit)) for _ in range(3)]
        ms = statistics.median(r[0] for r in runs)
        print(f"| {scans} scans | {len(data)} | {ms:.1f} | {runs[0][1]} |")
    before = with_scans(3840, 2160, 1000)
    ms, _ = cpu_ms(lambda: cv2.imdecode(np.frombuffer(before, np.uint8), cv2.IMREAD_COLOR))
    row = f"| 1000 scans, cv2.imdecode (the decoder before) | {len(before)} | {ms:.1f} |"
    print(f"{row} decoded |")
    print(
        "\n| frame (W x H) | resize to 224x224 CPU ms | depth back to W x H CPU ms | decoding |"
        "\n|---|---:|---:|---|"
    )
    side = int((3840 * 2160 / MAX_ASPECT_RATIO) ** 0.5)
    # 1,000,000 x 1 rather than the 8,000,000 x 1: the resize back up builds a 224 x W
    # float32 intermediate (7 GB at W = 8,000,000), too much for a shared machine.
    frames = [(3840, 2160), (MAX_ASPECT_RATIO * side, side), (91_000, 91), (1_000_000, 1)]
    for width, height in frames:
        frame = torch.rand(1, 3, height, width)
        depth = torch.rand(1, 1, 224, 224)
        down, _ = cpu_ms(lambda f=frame: resize_bilinear(f, (224, 224)))
        up, _ = cpu_ms(lambda d=depth, s=(height, width): resize_bilinear(d, s))
        try:
            decode_raw(b"", "rgb8", width, height, 3 * width, False, limit)
            verdict = "accepted"
        except ImageDecodeError as exc:
            verdict = f"refused ({exc.reason})" if exc.reason != "data_size" else "accepted"
        print(f"| {width} x {height} | {down:.1f} | {up:.1f} | {verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size, default=[(1242, 375), (1920, 1080)], metavar="WxH"
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (0: default)")
    parser.add_argument("--hostile", action="store_true", help="the bounds on decode work")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    if args.hostile:
        print(f"CPU: {cpu_model_name()}; one thread; CPU time in ms (JPEG: median of 3)")
        hostile()
        return
    sizes = args.sizes
    results = {}
    for w, h in sizes:
        for name, call in decoders(scene(w, h)).items():
            results.setdefault(name, {})[(w, h)] = median_ms(call, args.repeats)
    cpu = cpu_model_name()
    print(
        f"CPU: {cpu}; OpenCV {cv2.__version__}, {cv2.getNumThreads()} thread(s); median of "
        f"{args.repeats}"
    )
    header = " | ".join(f"{w}x{h} ms (% of 33 ms)" for w, h in sizes)
    print(f"\n| encoding | {header} |\n|---|" + "---:|" * len(sizes))
    for name, by_size in results.items():
        cells = [
            f"{by_size[s]:.2f} ({100 * by_size[s] / FRAME_BUDGET_MS:.0f} %)"
            if s in by_size
            else "n/a (odd height)"
            for s in sizes
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
