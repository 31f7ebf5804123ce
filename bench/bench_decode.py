"""Decode cost per frame for every camera encoding the node reads (and jpeg/png).

The time from a message's bytes to the HxWx3 uint8 image the model reads, per encoding, at
KITTI's 1242x375 and at 1920x1080, on one OpenCV thread (a per-core figure that does not depend
on how busy the machine's other cores are). Prints a Markdown table for bench/RESULTS.md.

    python bench/bench_decode.py                    # both sizes, every encoding, 30 repeats
    python bench/bench_decode.py --sizes 640x480 --repeats 100 --threads 0   # 0: OpenCV default
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import time
from typing import Callable

import cv2
import numpy as np
from PIL import Image as PILImage

from space_clip_ros.io.image_decoding import INPUT_ENCODINGS, decode_compressed, decode_raw
from space_clip_ros.io.image_encoding import encode_rgb

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


def cpu_name() -> str:
    """The CPU model as the OS names it (platform.processor() is empty on most Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # first call: allocations, code paths warmed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1242x375", "1920x1080"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (0: default)")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    results = {}
    for w, h in sizes:
        for name, call in decoders(scene(w, h)).items():
            results.setdefault(name, {})[(w, h)] = median_ms(call, args.repeats)
    cpu = cpu_name()
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
