"""Walks over the structure of PNG and JPEG data: bounded work before any decoder runs.

A decoder trusts the header and spends whatever the data asks for. These walks read only the
container (PNG chunks, JPEG marker segments), which costs one pass over the bytes in C (CRC,
regex search), and return what the decision to decode needs: the size the header declares, the
number of progressive scans, and the EXIF payload (for files' orientation). Each problem is a
`ContainerError` with a short reason, turned into an input error by image_decoding.

Written by hand because no library exposes these facts before decoding: Pillow reads the header
but neither counts scans nor checks chunk CRCs, and libjpeg-turbo's scan limit lives in its
TurboJPEG handle parameters, which neither OpenCV nor simplejpeg expose.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Optional

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"  # start of image, then the first marker's 0xFF

# Progressive JPEG scans a frame may have. libjpeg's own progressive script writes 10 scans for
# a colour image (6 for grey); mozjpeg's scan optimisation stays well below 100. Every scan is a
# pass over all the blocks of its components, so scans are where a small file buys a lot of
# work: 20,000 repeated scans in 889 KB (3840x2160) blocked a decode for minutes. libjpeg-turbo
# guards the same way: its TurboJPEG TJFLAG_LIMITSCANS refused more than 500 scans, and its
# TurboJPEG 3 fuzz targets set TJPARAM_SCANLIMIT to 100 (NVIDIA's nvImageCodec defaults to 256);
# 100 costs at most about 0.2 s at 4K here (bench/RESULTS.md, "Decode").
MAX_JPEG_SCANS = 100

# Start-of-frame markers (SOF0..SOF15 except DHT C4, JPG C8 and DAC CC).
_SOF_CODES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM carry no length
_SOS, _EOI, _SOI, _APP1 = 0xDA, 0xD9, 0xD8, 0xE1
# Inside entropy-coded data 0xFF is followed by 0x00 (stuffing) or RSTn; anything else (after
# optional 0xFF fill bytes) is the next marker.
_MARKER_AFTER_SCAN = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")
EXIF_PREFIX = b"Exif\x00\x00"


class ContainerError(ValueError):
    """The structure is broken; `reason` is truncated, too_complex or undecodable."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Container:
    """What a walk learned: the declared size, the scan count (JPEG) and the EXIF payload."""

    codec: str
    width: int
    height: int
    scans: int = 0
    exif: Optional[bytes] = None


def sniff(data: bytes) -> Optional[str]:
    """'PNG' or 'JPEG' from the first bytes, None for anything else."""
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data.startswith(JPEG_SOI):
        return "JPEG"
    return None


def walk_png(data: bytes) -> Container:
    """Every chunk must fit the data and match its CRC, from IHDR (first) up to IEND.

    OpenCV's PNG reader spends seconds on a 50-byte PNG whose chunk length points past the end
    of the data (measured: 4.3 s with OpenCV 4.11 and 5.0); this walk costs one CRC pass.
    """
    position, end = len(PNG_SIGNATURE), len(data)
    width = height = None
    exif = None
    while position + 12 <= end:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        body_end = position + 8 + length
        if length > 0x7FFFFFFF or body_end + 4 > end:
            raise ContainerError(
                f"chunk {_name(kind)} at byte {position} runs past the end of the data",
                "truncated",
            )
        crc = int.from_bytes(data[body_end : body_end + 4], "big")
        if zlib.crc32(data[position + 4 : body_end]) != crc:
            raise ContainerError(
                f"chunk {_name(kind)} at byte {position} fails its CRC", "undecodable"
            )
        body = data[position + 8 : body_end]
        if width is None:
            if kind != b"IHDR" or length != 13:
                raise ContainerError("the first chunk is not a 13-byte IHDR", "undecodable")
            width, height = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
        elif kind == b"eXIf" and exif is None:
            exif = body
        elif kind == b"IEND":
            return Container("PNG", width, height, exif=exif)
        position = body_end + 4
    raise ContainerError("no IEND chunk: the data is truncated", "truncated")


def walk_jpeg(data: bytes, max_scans: int = MAX_JPEG_SCANS) -> Container:
    """Marker segments from SOI to EOI: the frame header's size, the scans, APP1 EXIF.

    Stops counting at max_scans + 1 (the caller refuses that many, after the size check), so a
    file with 20,000 scans costs as much as one with 101. A segment or scan that runs past the
    end of the data, or a missing EOI, is `truncated`.
    """
    position, end = 2, len(data)
    frame: Optional[tuple[int, int]] = None
    scans = 0
    exif = None
    while True:
        if position >= end:
            raise ContainerError(
                f"no end-of-image marker: the data ends at byte {end}", "truncated"
            )
        if data[position] != 0xFF:
            raise ContainerError(f"byte {position} is not a marker", "undecodable")
        while position < end and data[position] == 0xFF:
            position += 1  # fill bytes
        if position >= end:
            raise ContainerError("the data ends inside a marker", "truncated")
        code = data[position]
        position += 1
        if code == _EOI:
            break
        if code in _STANDALONE:
            continue
        if code == _SOI:
            raise ContainerError(
                f"a second start-of-image marker at byte {position - 2}", "undecodable"
            )
        if position + 2 > end:
            raise ContainerError("the data ends inside a segment length", "truncated")
        length = int.from_bytes(data[position : position + 2], "big")
        segment_end = position + length
        if length < 2:
            raise ContainerError(
                f"segment at byte {position - 2} has length {length}", "undecodable"
            )
        if segment_end > end:
            raise ContainerError(
                f"segment 0xFF{code:02X} at byte {position - 2} runs past the end of the data",
                "truncated",
            )
        body = data[position + 2 : segment_end]
        if code in _SOF_CODES:
            if frame is not None:
                raise ContainerError("a second frame header (SOF)", "undecodable")
            if len(body) < 6:
                raise ContainerError("the frame header (SOF) is too short", "undecodable")
            frame = (int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big"))
        elif code == _APP1 and exif is None and body.startswith(EXIF_PREFIX):
            exif = body
        elif code == _SOS:
            if frame is None:
                raise ContainerError("a scan before the frame header (SOF)", "undecodable")
            scans += 1
            if scans > max_scans:
                break
            match = _MARKER_AFTER_SCAN.search(data, segment_end)
            if match is None:
                raise ContainerError(f"scan {scans} runs to the end of the data", "truncated")
            position = match.start()
            continue
        position = segment_end
    if frame is None:
        raise ContainerError("no frame header (SOF)", "undecodable")
    return Container("JPEG", frame[0], frame[1], scans=scans, exif=exif)


def _name(kind: bytes) -> str:
    """A chunk type for a message: printable ASCII as is, other bytes escaped."""
    return kind.decode("ascii", "backslashreplace")
