"""Download and lay out KITTI for training: raw drives, annotated depth and the Eigen split lists.

    python -m training.prepare_kitti --root data/kitti --dry-run
    python -m training.prepare_kitti --root data/kitti

Resulting tree (what training/datasets.py reads):

    <root>/splits/kitti_eigen_{train,test}_files_with_gt.txt
    <root>/splits/kitti_eigen_{train_minus_val,val}.txt, kitti_eigen_val.json (training/splits.py)
    <root>/raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png
    <root>/raw/2011_09_26/calib_cam_to_cam.txt
    <root>/annotated/{train,val}/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/*.png

Downloads are resumable (HTTP Range on a ``.part`` file), each archive is verified (size against
the server's length, zip CRCs, SHA-256 where one is known) before it is extracted, and a marker
under ``<root>/.prepared/`` makes finished archives cost nothing on a re-run. Archives copied in
by hand into ``<root>/downloads/`` are verified and extracted like downloaded ones: that is the
way to prepare a machine without internet.

Once the lists are in place, a validation list is held out from the Eigen training drives by drive
(training/splits.py; seed ``--val-seed``, share ``--val-fraction``): the recipe trains on
``kitti_eigen_train_minus_val.txt`` and selects its checkpoint on ``kitti_eigen_val.txt``; the
test list is left for the final evaluation.

Only https is fetched (plain http only from this machine's loopback, e.g. a local mirror or the
tests' server), redirects included. KITTI publishes no checksums, so none ship with this tool;
``--sha256-file`` takes a ``sha256sum``-format list the user trusts (e.g. one made on the first
machine that downloaded the data) and every archive named in it is checked. Extraction refuses
members that would land outside the target folder, archives whose members add up to more than
``--max-extract-gb`` or than the free disk, and writes each member under a temporary name.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import logging
import re
import shutil
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from tqdm import tqdm

from space_clip_ros.errors import ConfigError, RuntimeFailure, quote, run_tool
from space_clip_ros.io.atomic import atomic_path
from training.splits import DRIVE_RE, SPECS, SPLIT_SEED, VAL_FRACTION, make_split

PROG = "python -m training.prepare_kitti"
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
# Published sizes / checksums. KITTI publishes no checksums (so none are invented here: users can
# pass their own with --sha256-file); the annotated archive's size is stated on the benchmark page
# only approximately, so it is an estimate for --dry-run, not a check.
KNOWN_SHA256: dict[str, str] = {}
# The largest KITTI archive (data_depth_annotated.zip) extracts to about 14.5 GB.
DEFAULT_MAX_EXTRACT_GB = 64.0
APPROX_BYTES = {"data_depth_annotated.zip": 14_500_000_000}
SPLIT_FILES = ("kitti_eigen_train_files_with_gt.txt", "kitti_eigen_test_files_with_gt.txt")
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
                    f"no KITTI drive name in {quote(line.split()[0], 120)}",
                    source=f"{path}:{line_no}",
                    fix="use a BTS/AdaBins split list",
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


class InsecureURLError(ConfigError):
    """A URL that is not https (and not loopback): refused before anything is fetched."""


def check_url(url: str) -> str:
    """url if it is https, or http to this machine's loopback; InsecureURLError otherwise.

    Data fetched over plain http can be replaced on the way and KITTI publishes no checksums
    to catch that, so no mirror may be reached without TLS.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return url
    raise InsecureURLError(
        f"{quote(url, 120)} is not an https URL",
        fix="use the https address of the server or mirror (--kitti-url/--splits-url); "
        "plain http is accepted only from this machine's loopback (127.0.0.1, localhost)",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL check_url accepts (urllib follows https -> http)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_CheckedRedirects)


def _open(request: urllib.request.Request, timeout: float):
    """urlopen for checked URLs only, with checked redirects."""
    check_url(request.full_url)
    return _OPENER.open(request, timeout=timeout)


def read_sha256_file(path: Path) -> dict[str, str]:
    """{file name: hex digest} from a `sha256sum`-format file ('<64 hex>  <name>' per line)."""
    sums = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read ({exc})", source=path, field="--sha256-file", fix="check the path"
        ) from exc
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"\s*([0-9a-fA-F]{64})\s+\*?(.+?)\s*", line)
        if not match:
            raise ConfigError(
                f"line {number}: {quote(line, 120)} is not '<sha256>  <file name>'",
                source=path,
                field="--sha256-file",
                fix="write it with `sha256sum *.zip > sums.txt`",
            )
        sums[Path(match.group(2)).name] = match.group(1).lower()
    return sums


def _offline_error(url: str, dest: Optional[Path], exc: BaseException) -> PrepareError:
    where = str(dest) if dest else "<root>/downloads/ (zips) or <root>/splits/ (lists)"
    return PrepareError(
        f"cannot reach {url} ({exc}); this machine looks offline or the server is unreachable",
        fix=f"check the connection, or copy the file by hand to {where} (e.g. from a machine "
        "with internet) and re-run: present archives are verified and extracted without "
        "downloading",
    )


def remote_size(url: str, timeout: float) -> Optional[int]:
    """Content-Length from a HEAD request; None when the server does not say."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with _open(request, timeout) as response:
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
        response = _open(request, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: the part file is already whole
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == offset:
                part.replace(dest)
                return
            part.unlink()
            raise PrepareError(
                f"server refused to resume {part} (HTTP 416); the partial file was deleted",
                source=url,
                fix="re-run",
            ) from exc
        raise PrepareError(
            f"HTTP {exc.code} {exc.reason}",
            source=url,
            fix="check the URL (or --kitti-url/--splits-url mirror)",
        ) from exc
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        raise _offline_error(url, dest, exc) from exc

    with response:
        if response.status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise PrepareError(
                    f"server resumed at byte {start}, expected {offset}",
                    source=url,
                    fix=f"delete {part} and re-run",
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
                f"connection lost after {part.stat().st_size} bytes ({exc})",
                source=url,
                fix="re-run; the download resumes",
            ) from exc
    got = part.stat().st_size
    if total is not None and got != total:
        raise PrepareError(
            f"received {got} of {total} bytes into {part}",
            source=url,
            fix="re-run; the download resumes",
        )
    part.replace(dest)


def _total_from_content_range(value: Optional[str]) -> Optional[int]:
    if not value or "/" not in value or value.endswith("/*"):
        return None
    return int(value.rsplit("/", 1)[1])


def _start_from_content_range(value: Optional[str]) -> int:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else -1


def verify(path: Path, item: Item, checksums: Optional[dict[str, str]] = None) -> None:
    """Zip CRCs (and SHA-256 where known); a bad file is moved aside to ``*.corrupt``."""
    problem = None
    expected = {**KNOWN_SHA256, **(checksums or {})}.get(item.name)
    if expected:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            problem = f"SHA-256 {digest.hexdigest()} differs from the expected {expected}"
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
            f"{problem} (downloaded from {item.url}); moved to {aside}",
            source=path,
            fix="re-run to download it again",
        )


def safe_extract(archive: Path, target: Path, max_bytes: int) -> None:
    """Extract a zip into target; nothing lands outside it and no member is left half-written.

    Checked before the first byte is written: every member's path stays inside target (no
    absolute paths, no '..', no symlinked folder leading out), and the members' declared sizes
    add up to at most max_bytes and to less than the free disk. zipfile never writes more than
    a member's declared size, so the declared sum bounds what is written.
    """
    fix = "delete the archive and download it again from the official https address"
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        total = sum(m.file_size for m in members)
        if total > max_bytes:
            raise PrepareError(
                f"its members add up to {_human(total)}, more than the {_human(max_bytes)} "
                "allowed",
                source=archive,
                fix=f"{fix}, or raise --max-extract-gb",
            )
        target.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(target).free
        if total > free:
            raise PrepareError(
                f"needs {_human(total)} to extract, {target} has {_human(free)} free",
                source=archive,
                fix="free disk space or choose another --root",
            )
        base = target.resolve()
        for member in members:
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            dest = (base / member.filename).resolve()
            if member.filename.startswith("/") or ".." in parts or not dest.is_relative_to(base):
                raise PrepareError(
                    f"member {quote(member.filename, 120)} would be written outside {target}; "
                    "nothing was extracted",
                    source=archive,
                    fix=fix,
                )
        for member in members:
            dest = target / member.filename
            if member.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)


def prepare_item(
    item: Item,
    root: Path,
    timeout: float,
    keep_archives: bool,
    checksums: Optional[dict[str, str]] = None,
    max_extract_bytes: int = int(DEFAULT_MAX_EXTRACT_GB * 1e9),
) -> str:
    """Bring one item to its final place; returns what was done ('skipped', 'prepared')."""
    marker = root / ".prepared" / f"{item.name}.done"
    if marker.exists():
        return "skipped"
    downloads = root / "downloads"
    archive = (downloads / item.name) if item.is_zip else (root / "splits" / item.name)
    if not archive.exists():
        download(item.url, archive, timeout)
    verify(archive, item, checksums)
    if item.is_zip:
        safe_extract(archive, root / item.extract_to, max_extract_bytes)
        if not keep_archives:
            archive.unlink()
    marker.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps({"url": item.url, "name": item.name}) + "\n")
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
        f"download: {_human(total_download)}; "
        f"disk needed: about {_human(total_download + largest)} "
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
    *,
    checksums: Optional[dict[str, str]] = None,
    max_extract_bytes: int = int(DEFAULT_MAX_EXTRACT_GB * 1e9),
    val_seed: int = SPLIT_SEED,
    val_fraction: float = VAL_FRACTION,
) -> None:
    for base in bases.values():
        check_url(base)  # before anything is fetched
    extra = (checksums, max_extract_bytes)
    # The lists are small and say which drives are needed, so even --dry-run fetches them, and
    # holds out the validation drives (a few small files) before any large download.
    for item in split_items(bases):
        prepare_item(item, root, timeout, keep_archives, *extra)
    make_split(SPECS["kitti"], root, val_seed, val_fraction)
    if drives is None:
        drives = drives_in_split_lists([root / "splits" / name for name in SPLIT_FILES])
    items = data_items(drives, bases)
    LOG.info(
        "%d drives on %d days referenced by the Eigen split",
        len(drives),
        len({d[:10] for d in drives}),
    )
    if checksums is not None:
        unchecked = [i.name for i in items if i.name not in checksums]
        if unchecked:
            LOG.warning(
                "no SHA-256 in --sha256-file for %d file(s) (checked by zip CRC only): %s",
                len(unchecked),
                ", ".join(unchecked[:5]) + (" ..." if len(unchecked) > 5 else ""),
            )
    if dry:
        dry_run(items, root, timeout)
        return
    for item in tqdm(items, desc="archives", unit="archive", disable=None):
        outcome = prepare_item(item, root, timeout, keep_archives, *extra)
        LOG.info("%s: %s", item.name, outcome)
    print(f"KITTI ready under {root} (raw/, annotated/, splits/)")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
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
        "--sha256-file",
        type=Path,
        help="sha256sum-format list ('<sha256>  <file name>') the archives must match; KITTI "
        "publishes none, so none ship with this tool",
    )
    parser.add_argument(
        "--max-extract-gb",
        type=float,
        default=DEFAULT_MAX_EXTRACT_GB,
        help=f"refuse an archive whose members add up to more (default: {DEFAULT_MAX_EXTRACT_GB})",
    )
    parser.add_argument(
        "--val-seed",
        type=int,
        default=SPLIT_SEED,
        help=f"seed of the validation drives' draw (default {SPLIT_SEED}; training/splits.py)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=VAL_FRACTION,
        help=f"share of the Eigen training drives held out for validation (default "
        f"{VAL_FRACTION})",
    )
    parser.add_argument(
        "--drives",
        nargs="+",
        help="only these drives (e.g. 2011_09_26_drive_0001) instead of the split's",
    )
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Exit 2 for a bad URL, checksum list or split list, 1 for a download or extraction that
    fails (re-running resumes)."""
    return run_tool(PROG, _main, argv, log_level=logging.INFO)


def _main(argv: Optional[list[str]]) -> int:
    args = parse_args(argv)
    run(
        args.root,
        {"kitti": args.kitti_url.rstrip("/"), "splits": args.splits_url.rstrip("/")},
        args.timeout,
        args.dry_run,
        args.keep_archives,
        args.drives,
        checksums=read_sha256_file(args.sha256_file) if args.sha256_file else None,
        max_extract_bytes=int(args.max_extract_gb * 1e9),
        val_seed=args.val_seed,
        val_fraction=args.val_fraction,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
