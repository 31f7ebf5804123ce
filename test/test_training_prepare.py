"""training/prepare_kitti.py against a real loopback HTTP server serving zips the test builds."""

from __future__ import annotations

import http.server
import re
import threading
import time
import zipfile
from pathlib import Path

import pytest

from training import prepare_kitti as pk

DRIVE = "2011_09_26_drive_0001"
TRAIN_LINE = (
    f"2011_09_26/{DRIVE}_sync/image_02/data/0000000005.png "
    f"{DRIVE}_sync/proj_depth/groundtruth/image_02/0000000005.png 721.5377\n"
)
TEST_LINE = f"2011_09_26/{DRIVE}_sync/image_02/data/0000000000.png None 721.5377\n"


def _zip(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path.read_bytes()


@pytest.fixture
def server(tmp_path):
    """Serves {url path: bytes} with Range support; records (path, Range header, bytes sent)."""
    files: dict[str, bytes] = {}
    log: list[tuple[str, str, int]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, body: bool) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if body:
                self.wfile.write(data[start:])
                log.append((self.path, self.headers.get("Range", ""), len(data) - start))

        def do_GET(self):
            self._send(True)

        def do_HEAD(self):
            self._send(False)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    build = tmp_path / "build"
    build.mkdir()
    files["/splits/kitti_eigen_train_files_with_gt.txt"] = TRAIN_LINE.encode()
    files["/splits/kitti_eigen_test_files_with_gt.txt"] = TEST_LINE.encode()
    files["/kitti/data_depth_annotated.zip"] = _zip(
        build / "a.zip",
        {f"train/{DRIVE}_sync/proj_depth/groundtruth/image_02/0000000005.png": b"depth" * 1000},
    )
    files["/kitti/raw_data/2011_09_26_calib.zip"] = _zip(
        build / "c.zip", {"2011_09_26/calib_cam_to_cam.txt": b"K: 1 0 0"}
    )
    files[f"/kitti/raw_data/{DRIVE}/{DRIVE}_sync.zip"] = _zip(
        build / "d.zip",
        {
            f"2011_09_26/{DRIVE}_sync/image_02/data/{i:010d}.png": bytes([i]) * 5000
            for i in range(6)
        },
    )
    yield {
        "files": files,
        "log": log,
        "bases": {"kitti": f"{base}/kitti", "splits": f"{base}/splits"},
    }
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_full_run_lays_out_the_tree_and_a_rerun_downloads_nothing(server, tmp_path):
    root = tmp_path / "kitti"
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert (
        root / "raw" / "2011_09_26" / f"{DRIVE}_sync" / "image_02" / "data" / "0000000005.png"
    ).read_bytes() == bytes([5]) * 5000
    assert (root / "raw" / "2011_09_26" / "calib_cam_to_cam.txt").exists()
    assert (
        root
        / "annotated"
        / "train"
        / f"{DRIVE}_sync"
        / "proj_depth"
        / "groundtruth"
        / "image_02"
        / "0000000005.png"
    ).exists()
    assert (root / "splits" / "kitti_eigen_train_files_with_gt.txt").read_text() == TRAIN_LINE
    assert not list((root / "downloads").glob("*.zip")), (
        "archives are deleted after extraction by default"
    )
    fetched = len(server["log"])
    assert fetched == 5
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert len(server["log"]) == fetched, "a second run must skip everything already prepared"


def test_resumes_a_partial_download_with_http_range(server, tmp_path):
    url_path = f"/kitti/raw_data/{DRIVE}/{DRIVE}_sync.zip"
    data = server["files"][url_path]
    dest = tmp_path / "dl" / f"{DRIVE}_sync.zip"
    dest.parent.mkdir()
    half = len(data) // 2
    (dest.parent / (dest.name + ".part")).write_bytes(data[:half])
    pk.download(server["bases"]["kitti"] + url_path[len("/kitti") :], dest, timeout=5)
    assert dest.read_bytes() == data
    assert server["log"] == [(url_path, f"bytes={half}-", len(data) - half)]
    assert not (dest.parent / (dest.name + ".part")).exists()


def test_corrupted_archive_is_reported_and_moved_aside(server, tmp_path):
    url_path = f"/kitti/raw_data/{DRIVE}/{DRIVE}_sync.zip"
    good = server["files"][url_path]
    server["files"][url_path] = (
        good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:]
    )  # same size, bad CRC
    root = tmp_path / "kitti"
    with pytest.raises(pk.PrepareError, match=r"CRC|not a valid zip") as info:
        pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert f"{DRIVE}_sync.zip" in str(info.value) and "re-run" in str(info.value)
    assert (root / "downloads" / f"{DRIVE}_sync.zip.corrupt").exists()
    assert not (root / ".prepared" / f"{DRIVE}_sync.zip.done").exists()
    server["files"][url_path] = good  # the server is fixed: a re-run completes
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=False, drives=None)
    assert (root / ".prepared" / f"{DRIVE}_sync.zip.done").exists()


def test_archive_copied_in_by_hand_is_used_without_downloading(server, tmp_path):
    root = tmp_path / "kitti"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "data_depth_annotated.zip").write_bytes(
        server["files"]["/kitti/data_depth_annotated.zip"]
    )
    pk.run(root, server["bases"], timeout=5, dry=False, keep_archives=True, drives=None)
    assert "/kitti/data_depth_annotated.zip" not in [path for path, _, _ in server["log"]]
    assert (root / "annotated" / "train").is_dir()


def test_dry_run_lists_files_and_disk_without_downloading_archives(server, tmp_path, capsys):
    root = tmp_path / "kitti"
    pk.run(root, server["bases"], timeout=5, dry=True, keep_archives=False, drives=None)
    out = capsys.readouterr().out
    for name in ("data_depth_annotated.zip", "2011_09_26_calib.zip", f"{DRIVE}_sync.zip"):
        assert name in out
    total = sum(len(v) for k, v in server["files"].items() if k.endswith(".zip"))
    assert f"download: {pk._human(total)}" in out and "disk needed" in out
    assert not (root / "downloads").exists()
    assert all(path.startswith("/splits/") for path, _, _ in server["log"]), (
        "only the split lists are fetched"
    )


def test_offline_fails_fast_naming_the_url(tmp_path):
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bases = {
        "kitti": f"http://127.0.0.1:{port}/kitti",
        "splits": f"http://127.0.0.1:{port}/splits",
    }
    start = time.monotonic()
    code = pk.main(
        [
            "--root",
            str(tmp_path / "kitti"),
            "--kitti-url",
            bases["kitti"],
            "--splits-url",
            bases["splits"],
            "--timeout",
            "3",
        ]
    )
    assert code == 1
    assert time.monotonic() - start < 10
    with pytest.raises(pk.PrepareError) as info:
        pk.run(tmp_path / "kitti", bases, timeout=3, dry=False, keep_archives=False, drives=None)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/splits/kitti_eigen_train_files_with_gt.txt" in message
    assert "copy the file by hand" in message
