"""bench/bench_shared_encoder.py runs on the tiny model and counts what it claims to count.

Figures are the benchmark's business (bench/RESULTS.md); this only checks that the script runs
end to end (memory processes included) and that its parameter accounting is right: the shared
configuration duplicates nothing, the separate one the whole tower.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_run_prints_the_three_configurations():
    done = subprocess.run(
        [sys.executable, "bench/bench_shared_encoder.py", "--tiny", "--rounds", "1",
         "--iters", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {
        m[1]: [int(v.replace(",", "")) for v in m.groups()[1:]]
        for m in re.finditer(
            r"^\| (\w+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", done.stdout, re.M
        )
    }
    tower, decoder, projection = 76_096, 51_224, 512  # testing/tiny.py; the host keeps its proj
    assert rows["backbone"] == [tower + projection, 0, 0]
    assert rows["shared"] == [tower + projection + decoder, decoder, 0]
    assert rows["separate"] == [2 * tower + projection + decoder, decoder, tower]
    assert "duplicated parameters when shared: 0" in done.stdout
    assert "python bench/bench_shared_encoder.py --device cuda" in done.stdout
