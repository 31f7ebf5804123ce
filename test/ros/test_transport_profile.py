"""config/fastdds_large_data.xml: well formed, installed, accepted by Fast DDS, and carrying 7.4 MB
organized clouds intact from one process to another.

The cross-process checks run bench/bench_transport.py's own publisher, subscriber and probe
processes (the benchmark measures with the same code the test trusts). They assert delivery,
integrity and the transports Fast DDS really created, never speed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from testing.package_files import installed_files, setup_kwargs

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "bench_transport.py"
NS = {"dds": "http://www.eprosima.com"}
# One organized 1920x1080 cloud with packed rgb (x y z rgb float32), the size the profile is for.
CLOUD_1080P_BYTES = 1920 * 1080 * 16
_spec = importlib.util.spec_from_file_location("bench_transport", BENCH)
bench = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bench)
PROFILE = bench.PROFILE


def segment_size() -> int:
    nodes = ET.parse(PROFILE).getroot().findall(".//dds:segment_size", NS)
    assert len(nodes) == 1, "one shared-memory transport with a segment size"
    return int(nodes[0].text)


def env_with(profile: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in bench.FASTDDS_ENV}
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def probe(profile: Path) -> tuple[dict, str]:
    """Transports of a fresh participant started with `profile`, and everything it printed."""
    result = subprocess.run(
        [sys.executable, str(BENCH), "--role", "probe"],
        env=env_with(profile),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]), result.stdout + result.stderr


def test_profile_defines_a_default_participant_with_shared_memory_and_udp():
    root = ET.parse(PROFILE).getroot()
    descriptors = {
        d.findtext("dds:transport_id", namespaces=NS): d.findtext("dds:type", namespaces=NS)
        for d in root.iterfind(".//dds:transport_descriptors/dds:transport_descriptor", NS)
    }
    participants = root.findall(".//dds:participant[@is_default_profile='true']", NS)
    assert len(participants) == 1, "exactly one default participant profile"
    rtps = participants[0].find("dds:rtps", NS)
    used = [t.text for t in rtps.iterfind("dds:userTransports/dds:transport_id", NS)]
    assert sorted(descriptors[t] for t in used) == ["SHM", "UDPv4"]  # UDP: other hosts still hear
    assert rtps.findtext("dds:useBuiltinTransports", namespaces=NS) == "false"
    # A whole 1080p cloud fits in the segment: no fragment waits for (or loses) a buffer.
    assert segment_size() >= CLOUD_1080P_BYTES


def test_profile_is_installed_with_the_package():
    assert "share/space_clip_ros/config/fastdds_large_data.xml" in installed_files(setup_kwargs())


def test_fast_dds_accepts_the_profile_and_reports_a_broken_one(tmp_path):
    transports, output = probe(PROFILE)
    assert "Error" not in output and "XMLPARSER" not in output, output[-2000:]
    sizes = [size for _, size, _ in transports["shm_segments"]]
    assert max(sizes) >= segment_size(), f"no segment of the profile's size among {sizes}"

    broken = tmp_path / "broken.xml"  # the check above can fail: Fast DDS names a bad file
    broken.write_text(PROFILE.read_text().replace("<segment_size>", "<segmentsize>", 1)
                      .replace("</segment_size>", "</segmentsize>", 1))  # fmt: skip
    transports, output = probe(broken)
    assert "XMLPARSER" in output and "Error" in output, output[-2000:]
    assert max(size for _, size, _ in transports["shm_segments"]) < segment_size()


def test_large_clouds_cross_processes_intact_with_the_profile(tmp_path):
    count = 6
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--settings", "profile", "--sizes", "1242x375",
         "--count", str(count), "--rate", "5", "--rounds", "1", "--decimations",
         # history as deep as the run: a reliable writer then never replaces an unacknowledged
         # cloud, so every one must arrive however slow the machine is
         "--pub-depth", str(count), "--sub-depth", str(count), "--json", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())["profile 1242x375/1"]
    assert figures["errors"] == [], figures["errors"]
    assert figures["corrupt"] == 0
    assert figures["delivered"] == count, result.stdout[-2000:]
    assert figures["cloud_mb"] == 1242 * 375 * 16 / 1e6  # organized, x y z + rgb
    for side in ("pub_shm_mb", "sub_shm_mb"):  # both processes had the profile's own segment
        assert figures[side] * 2**20 >= 0.99 * segment_size(), figures
