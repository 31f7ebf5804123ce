"""Download and lay out KITTI for training: raw drives, annotated depth and the Eigen split lists.

    python -m training.prepare_kitti --root data/kitti --dry-run
    python -m training.prepare_kitti --root data/kitti

Resulting tree (what training/datasets.py reads):

    <root>/splits/kitti_eigen_{train,test}_files_with_gt.txt
    <root>/raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png
    <root>/raw/2011_09_26/calib_cam_to_cam.txt
    <root>/annotated/{train,val}/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/*.png

Downloads are resumable (HTTP Range on a ``.part`` file), each archive is verified (size against
the server's length, zip CRCs, SHA-256 where one is known) before it is extracted, and a marker
under ``<root>/.prepared/`` makes finished archives cost nothing on a re-run. Archives copied in
by hand into ``<root>/downloads/`` are verified and extracted like downloaded ones: that is the
way to prepare a machine without internet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import socket
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from space_clip_ros.errors import RuntimeFailure

LOG = logging.getLogger("prepare_kitti")

# The one place that says where the data lives. {kitti} and {splits} are the two bases, which
# --kitti-url / --splits-url replace (mirrors, or the loopback server of the tests).
DEFAULT_BASES = {
    "kitti": "https://s3.eu-central-1.amazonaws.com/avg-kitti",
    # The Eigen split lists in the BTS/AdaBins format, as used by the SPACE-CLIP release.
    "splits": "https://raw.githubusercontent.com/shariqfarooq123/AdaBins/main/train_test_inputs",
}
URL_TEMPLATES = {
    "raw_drive": "{kitti}/raw_data/{drive}/{drive}_sync.zip",
    "raw_calib": "{kitti}/raw_data/{date}_calib.zip",
    "annotated": "{kitti}/data_depth_annotated.zip",
    "train_list": "{splits}/kitti_eigen_train_files_with_gt.txt",
    "test_list": "{splits}/kitti_eigen_test_files_with_gt.txt",
}
# Published sizes / checksums. KITTI publishes no checksums; the annotated archive's size is
# stated on the benchmark page only approximately, so it is an estimate for --dry-run, not a check.
KNOWN_SHA256: dict[str, str] = {}
APPROX_BYTES = {"data_depth_annotated.zip": 14_500_000_000}
SPLIT_FILES = ("kitti_eigen_train_files_with_gt.txt", "kitti_eigen_test_files_with_gt.txt")
DRIVE_RE = re.compile(r"(\d{4}_\d{2}_\d{2})_drive_(\d{4})_sync")
CHUNK = 1 << 20


class PrepareError(RuntimeFailure):
    """Preparation cannot continue; the message names the URL or file and what to do."""


@dataclass(frozen=True)
class Item:
    """One file to fetch: where from, its name under downloads/, and where it is extracted."""

    url: str
    name: str
    extract_to: Optional[str]  # sub-folder of root for zips; None for plain files (kept as is)

    @property
    def is_zip(self) -> bool:
        return self.extract_to is not None


def split_items(bases: dict[str, str]) -> list[Item]:
    return [
        Item(URL_TEMPLATES["train_list"].format(**bases), SPLIT_FILES[0], None),
        Item(URL_TEMPLATES["test_list"].format(**bases), SPLIT_FILES[1], None),
    ]


def drives_in_split_lists(paths: list[Path]) -> list[str]:
    """Drive names ('2011_09_26_drive_0001') referenced by BTS/AdaBins-format file lists."""
    drives = set()
    for path in paths:
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            match = DRIVE_RE.search(line.split()[0])
            if not match:
                raise PrepareError(
                    f"{path}:{line_no}: no KITTI drive name in {line.split()[0]!r}. Fix: use a BTS/AdaBins split list."
                )
            drives.add(f"{match.group(1)}_drive_{match.group(2)}")
    return sorted(drives)


def data_items(drives: list[str], bases: dict[str, str]) -> list[Item]:
    """Annotated depth, one calibration archive per recording day, one archive per drive."""
    items = [
        Item(URL_TEMPLATES["annotated"].format(**bases), "data_depth_annotated.zip", "annotated")
    ]
    for date in sorted({d[:10] for d in drives}):
        items.append(
            Item(URL_TEMPLATES["raw_calib"].format(date=date, **bases), f"{date}_calib.zip", "raw")
        )
    for drive in drives:
        items.append(
            Item(
                URL_TEMPLATES["raw_drive"].format(drive=drive, **bases), f"{drive}_sync.zip", "raw"
            )
        )
    return items


def _offline_error(url: str, dest: Optional[Path], exc: BaseException) -> PrepareError:
    where = str(dest) if dest else "<root>/downloads/ (zips) or <root>/splits/ (lists)"
    return PrepareError(
        f"cannot reach {url} ({exc}). This machine looks offline or the server is unreachable. "
        f"Fix: check the connection, or copy the file by hand to {where} (e.g. from a machine with internet) "
        "and re-run: present archives are verified and extracted without downloading."
    )


def remote_size(url: str, timeout: float) -> Optional[int]:
    """Content-Length from a HEAD request; None when the server does not say."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            return int(length) if length is not None else None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        raise _offline_error(url, None, exc) from exc


def download(url: str, dest: Path, timeout: float) -> None:
    """Fetch url to dest, resuming a previous ``dest.part``; dest appears only when complete."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: the part file is already whole
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == offset:
                part.replace(dest)
                return
            part.unlink()
            raise PrepareError(
                f"{url}: server refused to resume {part} (HTTP 416); the partial file was deleted. Fix: re-run."
            ) from exc
        raise PrepareError(
            f"{url}: HTTP {exc.code} {exc.reason}. Fix: check the URL (or --kitti-url/--splits-url mirror)."
        ) from exc
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        raise _offline_error(url, dest, exc) from exc

    with response:
        if response.status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise PrepareError(
                    f"{url}: server resumed at byte {start}, expected {offset}. Fix: delete {part} and re-run."
                )
            mode = "ab"
            LOG.info("resuming %s at %d bytes", dest.name, offset)
        else:  # 200: the server ignored Range (or there was nothing to resume): start over
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            offset, mode = 0, "wb"
        try:
            with (
                open(part, mode) as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    leave=False,
                    disable=None,
                ) as bar,
            ):
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))
        except (socket.timeout, ConnectionError, urllib.error.URLError) as exc:
            raise PrepareError(
                f"{url}: connection lost after {part.stat().st_size} bytes ({exc}). Fix: re-run; the download resumes."
            ) from exc
    got = part.stat().st_size
    if total is not None and got != total:
        raise PrepareError(
            f"{url}: received {got} of {total} bytes into {part}. Fix: re-run; the download resumes."
        )
    part.replace(dest)


def _total_from_content_range(value: Optional[str]) -> Optional[int]:
    if not value or "/" not in value or value.endswith("/*"):
        return None
    return int(value.rsplit("/", 1)[1])


def _start_from_content_range(value: Optional[str]) -> int:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else -1


def verify(path: Path, item: Item) -> None:
    """Zip CRCs (and SHA-256 where known); a bad file is moved aside to ``*.corrupt``."""
    problem = None
    expected = KNOWN_SHA256.get(item.name)
    if expected:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            problem = f"SHA-256 {digest.hexdigest()} differs from the published {expected}"
    if problem is None and item.is_zip:
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                problem = f"member {bad!r} fails its CRC check"
        except zipfile.BadZipFile as exc:
            problem = f"not a valid zip archive ({exc})"
    if problem is None and not item.is_zip and path.stat().st_size == 0:
        problem = "the file is empty"
    if problem:
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        raise PrepareError(
            f"{path}: {problem} (downloaded from {item.url}); moved to {aside}. Fix: re-run to download it again."
        )


def prepare_item(item: Item, root: Path, timeout: float, keep_archives: bool) -> str:
    """Bring one item to its final place; returns what was done ('skipped', 'prepared')."""
    marker = root / ".prepared" / f"{item.name}.done"
    if marker.exists():
        return "skipped"
    downloads = root / "downloads"
    archive = (downloads / item.name) if item.is_zip else (root / "splits" / item.name)
    if not archive.exists():
        download(item.url, archive, timeout)
    verify(archive, item)
    if item.is_zip:
        target = root / item.extract_to
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(target)
        if not keep_archives:
            archive.unlink()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"url": item.url, "name": item.name}) + "\n")
    return "prepared"


def dry_run(items: list[Item], root: Path, timeout: float) -> int:
    """Print what would be fetched and the disk it needs; returns the total download bytes."""
    total_download, largest = 0, 0
    unknown = []
    print(f"{'status':<10}{'size':>12}  file")
    for item in items:
        if (root / ".prepared" / f"{item.name}.done").exists():
            print(f"{'done':<10}{'':>12}  {item.name}")
            continue
        size = remote_size(item.url, timeout) or APPROX_BYTES.get(item.name)
        if size is None:
            unknown.append(item.name)
        total_download += size or 0
        largest = max(largest, size or 0)
        print(f"{'fetch':<10}{_human(size):>12}  {item.name}  <- {item.url}")
    # KITTI's PNGs are already compressed: extracted size ~ archive size. Archives are deleted
    # after extraction (unless --keep-archives), so the peak is everything extracted + one archive.
    print(
        f"download: {_human(total_download)}; disk needed: about {_human(total_download + largest)} "
        f"(extracted data ~ archive size, plus the largest archive while it is extracted)"
    )
    if unknown:
        print(f"size unknown for {len(unknown)} file(s): {', '.join(unknown)}")
    return total_download


def _human(size: Optional[int]) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return str(size)


def run(
    root: Path,
    bases: dict[str, str],
    timeout: float,
    dry: bool,
    keep_archives: bool,
    drives: Optional[list[str]],
) -> None:
    lists = split_items(bases)
    for item in (
        lists
    ):  # the lists are small and say which drives are needed, so even --dry-run fetches them
        prepare_item(item, root, timeout, keep_archives)
    if drives is None:
        drives = drives_in_split_lists([root / "splits" / name for name in SPLIT_FILES])
    items = data_items(drives, bases)
    LOG.info(
        "%d drives on %d days referenced by the Eigen split",
        len(drives),
        len({d[:10] for d in drives}),
    )
    if dry:
        dry_run(items, root, timeout)
        return
    for item in tqdm(items, desc="archives", unit="archive", disable=None):
        outcome = prepare_item(item, root, timeout, keep_archives)
        LOG.info("%s: %s", item.name, outcome)
    print(f"KITTI ready under {root} (raw/, annotated/, splits/)")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        required=True,
        help="dataset root (see the module docstring for the tree)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list files and disk needed; fetches only the split lists",
    )
    parser.add_argument(
        "--kitti-url",
        default=DEFAULT_BASES["kitti"],
        help="base URL of the KITTI archives (a mirror)",
    )
    parser.add_argument(
        "--splits-url", default=DEFAULT_BASES["splits"], help="base URL of the Eigen split lists"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds before a silent connection counts as offline",
    )
    parser.add_argument(
        "--keep-archives", action="store_true", help="keep the zips after extraction"
    )
    parser.add_argument(
        "--drives",
        nargs="+",
        help="only these drives (e.g. 2011_09_26_drive_0001) instead of the split's",
    )
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    bases = {"kitti": args.kitti_url.rstrip("/"), "splits": args.splits_url.rstrip("/")}
    try:
        run(args.root, bases, args.timeout, args.dry_run, args.keep_archives, args.drives)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
