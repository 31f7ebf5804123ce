"""Camera pixel decoding (space_clip_ros.io.image_decoding) without ROS messages or DDS.

Every encoding is checked against an independent reference (the encoder that writes what a
driver publishes, and cv2's own I420 decoder for the YUV family), against cv_bridge where its
compiled part exists, and under a seeded fuzz: whatever the bytes and header fields, the result
is an image or an ImageDecodeError, never another exception.
"""

from __future__ import annotations

import io
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from space_clip_ros.io import image_decoding
from space_clip_ros.io.image_decoding import (
    INPUT_ENCODINGS,
    LAYOUTS,
    ImageDecodeError,
    compressed_codec,
    decode_compressed,
    decode_raw,
    read_image_file,
)
from space_clip_ros.io.limits import DEFAULT_MAX_FRAME_PIXELS
from testing.image_encoding import RawFrame, encode_rgb
from testing.unprivileged import open_folder, outcome_without_privileges

BIG = 1 << 30
H, W = 24, 32


def smooth_rgb(h: int = H, w: int = W) -> np.ndarray:
    """Gentle gradients: chroma subsampling and demosaicing are nearly lossless on them."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([40 + xx * 3, 60 + yy * 4, 200 - xx * 2 - yy], axis=2).astype(np.uint8)


def decode(frame: RawFrame, max_pixels: int = BIG, override=None):
    return decode_raw(
        frame.data,
        frame.encoding,
        frame.width,
        frame.height,
        frame.step,
        frame.is_bigendian,
        max_pixels,
        override,
    )


def i420_reference(rgb: np.ndarray) -> np.ndarray:
    """What cv2 makes of the image after a 4:2:0 round trip: the YUV decoders' exact target."""
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def test_the_issue_s_encodings_are_all_supported():
    wanted = {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "rgb16", "bgr16", "rgba16"}
    wanted |= {"bgra16", "yuv422_yuy2", "uyvy", "yuv422", "nv21", "nv24"}
    wanted |= {f"bayer_{p}{b}" for p in ("rggb", "bggr", "gbrg", "grbg") for b in (8, 16)}
    assert wanted <= set(INPUT_ENCODINGS)


@pytest.mark.parametrize("encoding", INPUT_ENCODINGS)
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("bigendian", [False, True])
def test_every_encoding_decodes_to_the_image_it_encodes(encoding, pad, bigendian):
    rgb = smooth_rgb()
    frame = encode_rgb(rgb, encoding, pad=pad, bigendian=bigendian)
    color = decode(frame)
    assert color.pixels.shape == (H, W, 3) and color.pixels.dtype == np.uint8
    got = color.rgb.astype(int)
    layout = LAYOUTS[encoding]
    if layout.family == "packed" and layout.channels == 1:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int)
        assert np.array_equal(got, np.repeat(gray[..., None], 3, axis=2))
    elif layout.family == "packed":
        assert np.array_equal(got, rgb)  # 16 bits: v * 257 * 255 / 65535 == v exactly
        assert color.order == layout.order
    elif layout.family == "bayer":  # demosaicing interpolates; the border rows are the worst
        inner = np.abs(got - rgb)[2:-2, 2:-2]
        assert inner.max() <= 8 and inner.mean() < 2, (inner.max(), inner.mean())
    elif encoding == "nv24":  # 4:4:4 with the 4:2:0 chroma repeated: the I420 decode plus rounding
        assert np.abs(got - i420_reference(rgb)).max() <= 1
    else:  # UYVY/YUY2/NV12/NV21: the same chroma, the same BT.601 decoder as cv2's I420
        assert np.abs(got - i420_reference(rgb)).max() <= 1


@pytest.mark.parametrize(
    "encoding,width,height", [("uyvy", 32, 23), ("yuv422_yuy2", 32, 23), ("nv24", 31, 23)]
)
def test_odd_sizes_decode_where_the_layout_allows_them(encoding, width, height):
    """KITTI's 375 rows: 4:2:2 shares chroma along rows only, 4:4:4 not at all."""
    rgb = smooth_rgb(height, width)
    color = decode(encode_rgb(rgb, encoding))
    assert color.pixels.shape == (height, width, 3)
    assert np.abs(color.rgb.astype(int) - rgb).mean() < 3


def test_bayer_patterns_put_each_filter_colour_where_ros_names_it():
    """A pure red scene: only the R sites carry signal, so a swapped pattern turns it blue."""
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        for bits in (8, 16):
            color = decode(encode_rgb(red, f"bayer_{pattern}{bits}"))
            assert tuple(color.rgb[4, 4]) == (200, 0, 0), (pattern, bits)


def test_sixteen_bits_scale_like_cv_bridge_and_respect_byte_order():
    values = np.array([[0, 128, 32767, 32768, 65535, 257 * 100]], np.uint16)
    expected = np.round(values * 255.0 / 65535.0).astype(np.uint8)
    for bigendian in (False, True):
        data = values.astype(">u2" if bigendian else "<u2").tobytes()
        color = decode_raw(data, "mono16", 6, 1, 12, bigendian, BIG)
        assert np.array_equal(color.pixels[0, :, 0], expected[0]), bigendian
    swapped = decode_raw(values.astype(">u2").tobytes(), "mono16", 6, 1, 12, False, BIG)
    assert not np.array_equal(swapped.pixels[0, :, 0], expected[0])  # the flag matters


def test_eight_bit_packed_frames_are_views_and_the_order_override_relabels_them():
    frame = encode_rgb(smooth_rgb(), "bgr8", pad=5)
    color = decode(frame, override="rgb")
    assert color.order == "rgb" and not color.pixels.flags.owndata
    assert np.shares_memory(color.pixels, np.frombuffer(frame.data, np.uint8))
    assert decode(encode_rgb(smooth_rgb(), "nv21"), override="bgr").order == "rgb"  # meaningless


@pytest.mark.parametrize(
    "change,reason,words",
    [
        ({"encoding": "yuv420"}, "encoding", "unsupported encoding 'yuv420'"),
        ({"encoding": "32FC1"}, "encoding", "unsupported encoding '32FC1'"),
        ({"encoding": "rgb8\n\x1b[31mFATAL forged"}, "encoding", r"rgb8\\n\\x1b\[31mFATAL"),
        ({"width": 31}, "odd_size", "'uyvy' needs an even width"),
        ({"encoding": "nv21", "height": 23}, "odd_size", "even width and height"),
        ({"step": 63}, "step", "step 63 is smaller than the 64 bytes"),
        ({"data": b"\x00" * 10}, "data_size", "truncated"),
        ({"width": 0}, "zero_size", "zero size"),
        ({"height": 1 << 20, "width": 1 << 20}, "too_large", "max_image_pixels"),
    ],
)
def test_bad_frames_raise_a_reasoned_error_with_quoted_fields(change, reason, words):
    frame = encode_rgb(smooth_rgb(), "uyvy")
    fields = {**frame.__dict__, **change}
    with pytest.raises(ImageDecodeError, match=words) as info:
        decode(RawFrame(**fields), max_pixels=DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == reason
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_the_default_pixel_limit_takes_4k_and_refuses_more():
    assert DEFAULT_MAX_FRAME_PIXELS == 3840 * 2160
    with pytest.raises(ImageDecodeError, match="max_image_pixels") as info:
        decode_raw(b"", "mono8", 4096, 4096, 4096, False, DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == "too_large"


# ----------------------------------------------------------------------------------- compressed


def encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt,codec",
    [
        ("jpeg", "JPEG"),
        ("png", "PNG"),
        ("JPG", "JPEG"),
        ("rgb8; jpeg compressed bgr8", "JPEG"),
        ("bgr8; png compressed bgr8", "PNG"),
        ("", None),
    ],
)
def test_ros_compressed_format_strings_name_the_codec(fmt, codec):
    assert compressed_codec(fmt) == codec


@pytest.mark.parametrize(
    "fmt,reason",
    [
        ("gif", "format"),
        ("tiff", "format"),
        ("webp", "format"),
        ("bgr8; dds compressed bgr8", "format"),
        ("16UC1; compressedDepth png", "compressed_depth"),
        ("32FC1; compressedDepth", "compressed_depth"),
        ("jpeg\n\x1b[2J[FATAL] forged", "format"),
    ],
)
def test_other_compressed_formats_and_compressed_depth_are_refused(fmt, reason):
    data = encoded(np.zeros((4, 4, 3), np.uint8), "PNG")
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(data, fmt, BIG)
    assert info.value.reason == reason
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


@pytest.mark.parametrize("container", ["GIF", "TIFF", "WEBP", "BMP"])
def test_bytes_of_another_container_are_refused_even_when_labelled_png(container):
    data = encoded(smooth_rgb(), container)
    with pytest.raises(ImageDecodeError, match="not a PNG or JPEG") as info:
        decode_compressed(data, "png", BIG)
    assert info.value.reason == "undecodable"


def test_a_small_png_bomb_is_refused_from_its_header_before_decoding():
    raw = zlib.compress(b"\x00" * (4096 * (1 + 4096 * 3)), 9)  # 4096x4096 black, filter bytes
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", (4096).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
        + png_chunk(b"IDAT", raw)
        + png_chunk(b"IEND", b"")
    )
    assert len(bomb) < 100_000
    started = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="4096x4096") as info:
        decode_compressed(bomb, "png", DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == "too_large" and time.perf_counter() - started < 0.5


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


@pytest.mark.parametrize(
    "data,words",
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "fails its CRC"),  # a broken PNG chunk
        (b"\xff\xd8 not really a jpeg", "not a PNG or JPEG"),
        (b"", "not a PNG or JPEG"),
    ],
)
def test_broken_bytes_are_an_input_error(data, words):
    with pytest.raises(ImageDecodeError, match=words) as info:
        decode_compressed(data, "png", BIG)
    assert info.value.reason == "undecodable"


def test_a_truncated_png_body_is_caught_after_the_header():
    data = encoded(smooth_rgb(), "PNG")
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(data[: len(data) // 2], "png", BIG)
    assert info.value.reason == "truncated"


def test_compressed_grey_and_sixteen_bit_pngs_decode_to_colour():
    grey = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    color = decode_compressed(encoded(grey, "PNG"), "mono8; png compressed mono8", BIG)
    assert np.array_equal(color.rgb, np.repeat(grey[..., None], 3, axis=2))
    wide = grey.astype(np.uint16) * 257
    color = decode_compressed(encoded(wide, "PNG"), "mono16; png compressed mono16", BIG)
    assert np.abs(color.rgb[..., 0].astype(int) - grey).max() <= 1


def test_a_sixteen_bit_png_scales_exactly_like_a_raw_mono16_frame():
    """One 16-to-8-bit rule: a PNG carries the same samples a mono16 Image would."""
    values = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 85).astype(np.uint16)
    raw = decode_raw(values.astype("<u2").tobytes(), "mono16", W, H, 2 * W, False, BIG)
    png = decode_compressed(encoded(values, "PNG"), "mono16; png compressed mono16", BIG)
    assert np.array_equal(png.rgb, raw.rgb)
    assert len(np.unique(png.rgb)) > 100  # not saturated to a few values


# A 160x120 JPEG of camera-like content, and the same bytes with another size in its header.
def camera_jpeg(width: int = 160, height: int = 120, **options) -> bytes:
    return encoded_with(smooth_rgb(height, width), "JPEG", **options)


def encoded_with(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format=fmt, **options)
    return buf.getvalue()


def with_frame_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0/SOF2) claiming width x height."""
    data = bytearray(jpeg)
    sof = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def with_repeated_last_scan(jpeg: bytes, copies: int) -> bytes:
    """A progressive JPEG whose last scan appears `copies` more times before EOI (each copy
    of a flat image's refinement scan is ~20 bytes and a pass over every block)."""
    last_scan = jpeg.rindex(b"\xff\xda")
    return jpeg[:-2] + jpeg[last_scan:-2] * copies + b"\xff\xd9"


def test_a_jpeg_header_claiming_more_pixels_than_its_data_is_refused_not_filled_grey():
    lying = with_frame_size(camera_jpeg(), 3840, 2160)
    with pytest.raises(ImageDecodeError, match="premature end") as info:
        decode_compressed(lying, "jpeg", DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == "truncated"


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_jpeg_is_refused(keep):
    data = camera_jpeg()
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(data[: int(len(data) * keep)], "jpeg", BIG)
    assert info.value.reason == "truncated"


def test_a_jpeg_header_of_60000x60000_is_too_large_not_undecodable():
    with pytest.raises(ImageDecodeError, match="60000x60000") as info:
        huge = with_frame_size(camera_jpeg(), 60000, 60000)
        decode_compressed(huge, "jpeg", DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == "too_large"


def test_a_zero_height_jpeg_says_zero_size():
    with pytest.raises(ImageDecodeError, match="zero size") as info:
        decode_compressed(with_frame_size(camera_jpeg(), 160, 0), "jpeg", BIG)
    assert info.value.reason == "zero_size"


def test_a_progressive_jpeg_with_thousands_of_scans_is_refused_before_any_decoder_runs(
    monkeypatch,
):
    flat = np.full((480, 640, 3), 128, np.uint8)
    bomb = with_repeated_last_scan(encoded_with(flat, "JPEG", progressive=True), 20_000)
    assert len(bomb) < 500_000

    def no_decoding(*args, **kwargs):
        raise AssertionError("the decoder ran on a file the scan limit refuses")

    monkeypatch.setattr(image_decoding.simplejpeg, "decode_jpeg", no_decoding)
    monkeypatch.setattr(image_decoding.cv2, "imdecode", no_decoding)
    with pytest.raises(ImageDecodeError, match="more than 100 scans") as info:
        decode_compressed(bomb, "jpeg", DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == "too_complex"


def test_an_ordinary_progressive_jpeg_decodes_like_its_baseline_twin():
    progressive = decode_compressed(camera_jpeg(progressive=True), "jpeg", BIG)
    baseline = decode_compressed(camera_jpeg(), "jpeg", BIG)
    assert progressive.rgb.shape == (120, 160, 3)
    assert np.abs(progressive.rgb.astype(int) - baseline.rgb).max() <= 2


@pytest.mark.parametrize("width,height", [(8_000_000, 1), (1, 8_000_000), (330, 10)])
def test_extreme_aspect_ratios_are_refused_before_the_data_is_read(width, height):
    with pytest.raises(ImageDecodeError, match="more than 32:1") as info:
        decode_raw(b"", "rgb8", width, height, 3 * width, False, DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == "aspect_ratio"
    decode(encode_rgb(smooth_rgb(10, 320), "rgb8"))  # 32:1 itself is still an image


def test_a_compressed_frame_of_extreme_aspect_ratio_is_refused():
    data = encoded(np.zeros((1, 200, 3), np.uint8), "PNG")
    with pytest.raises(ImageDecodeError) as info:
        decode_compressed(data, "png", BIG)
    assert info.value.reason == "aspect_ratio"


# ----------------------------------------------------------------------------------------- files


def test_a_sixteen_bit_grey_png_file_reads_as_the_node_reads_it(tmp_path):
    """space-clip-predict saturated this to white (Pillow's convert("RGB") clips at 255)."""
    values = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 85).astype(np.uint16)
    path = tmp_path / "grey16.png"
    path.write_bytes(encoded(values, "PNG"))
    from_file = read_image_file(path, BIG)
    from_message = decode_compressed(path.read_bytes(), "png", BIG)
    assert np.array_equal(from_file, from_message.rgb)
    assert from_file.dtype == np.uint8 and from_file.mean() < 200


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "WEBP", "PPM"])
def test_files_may_be_the_formats_image_tools_write(tmp_path, fmt):
    rgb = smooth_rgb()
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(encoded_with(rgb, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert np.array_equal(read_image_file(path, BIG), rgb)
    with pytest.raises(ImageDecodeError, match="not a PNG or JPEG"):  # never from the network
        decode_compressed(path.read_bytes(), "png", BIG)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_files_are_turned_upright_by_their_exif_orientation_as_pillow_turns_them(
    tmp_path, orientation
):
    rgb = np.random.default_rng(orientation).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    path.write_bytes(encoded_with(rgb, "PNG", exif=exif.tobytes()))
    with PILImage.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert np.array_equal(read_image_file(path, BIG), expected)
    # A camera frame is never turned: the same bytes as a message keep their stored layout.
    assert np.array_equal(decode_compressed(path.read_bytes(), "png", BIG).rgb, rgb)


def test_a_lying_jpeg_file_is_refused_like_the_message(tmp_path):
    path = tmp_path / "lying.jpg"
    path.write_bytes(with_frame_size(camera_jpeg(), 3840, 2160))
    with pytest.raises(ImageDecodeError) as info:
        read_image_file(path, DEFAULT_MAX_FRAME_PIXELS)
    assert info.value.reason == "truncated"


def test_a_file_too_big_for_the_pixel_limit_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.truncate(200 << 20)  # sparse: 200 MB on paper

    def no_reading(self):
        raise AssertionError("the file was read")

    monkeypatch.setattr(type(path), "read_bytes", no_reading)
    with pytest.raises(ImageDecodeError, match="--max-pixels=1000000") as info:
        read_image_file(path, 1_000_000)
    assert info.value.reason == "too_large"


def test_an_unreadable_file_says_why_with_the_system_s_words(tmp_path):
    with open_folder() as folder:
        path = folder / "secret.png"
        path.write_bytes(encoded(smooth_rgb(), "PNG"))
        assert outcome_without_privileges(lambda: read_image_file(path, BIG))[0] == "ok"
        path.chmod(0)
        kind, text = outcome_without_privileges(lambda: read_image_file(path, BIG))
    assert kind == "ImageDecodeError" and "Permission denied" in text, (kind, text)
    with pytest.raises(ImageDecodeError, match="Is a directory") as info:
        read_image_file(tmp_path, BIG)
    assert info.value.reason == "unreadable"


# ------------------------------------------------------------------------------------------ fuzz


def _mutations(rng: np.random.Generator, frame: RawFrame) -> RawFrame:
    fields = dict(frame.__dict__)
    data = bytearray(frame.data)
    for _ in range(rng.integers(1, 4)):
        what = rng.integers(0, 8)
        if what == 0:
            fields["encoding"] = str(rng.choice(INPUT_ENCODINGS + ("", "16UC1", "yuv420")))
        elif what == 1:
            fields["width"] = int(rng.choice([0, 1, 2, 3, frame.width + 1, frame.width // 2]))
        elif what == 2:
            fields["height"] = int(rng.choice([0, 1, 2, 3, frame.height - 1, frame.height * 3]))
        elif what == 3:
            fields["step"] = int(rng.integers(0, 4 * frame.step + 2))
        elif what == 4:
            fields["is_bigendian"] = not fields["is_bigendian"]
        elif what == 5 and data:
            del data[int(rng.integers(0, len(data))) :]
        elif what == 6:
            data += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        elif data:
            data[int(rng.integers(0, len(data)))] ^= 0xFF
    fields["data"] = bytes(data)
    return RawFrame(**fields)


def _corrupted(rng: np.random.Generator, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.integers(1, 6)):
        position = int(rng.integers(0, len(out)))
        if rng.random() < 0.2:
            del out[position:]
            if not out:
                break
        else:
            out[position] = int(rng.integers(0, 256))
    return bytes(out)


def test_seeded_fuzz_yields_an_image_or_an_image_decode_error_and_nothing_else():
    rng = np.random.default_rng(20261125)
    base = smooth_rgb(12, 16)
    raw = [encode_rgb(base, encoding, pad=int(p)) for encoding in INPUT_ENCODINGS for p in (0, 2)]
    compressed = [encoded(base, "PNG"), encoded(base, "JPEG"), encoded(base[..., 0], "PNG")]
    outcomes = {"image": 0, "error": 0}
    started = time.perf_counter()
    for n in range(2000):
        try:
            if n % 4 == 3:
                data = _corrupted(rng, compressed[int(rng.integers(0, len(compressed)))])
                color = decode_compressed(data, str(rng.choice(["png", "jpeg", ""])), 4096)
            else:
                color = decode(_mutations(rng, raw[int(rng.integers(0, len(raw)))]), 4096)
        except ImageDecodeError as exc:
            assert exc.reason and str(exc)
            outcomes["error"] += 1
            continue
        assert color.pixels.dtype == np.uint8 and color.pixels.ndim == 3
        assert color.pixels.shape[2] == 3 and color.pixels.size <= 3 * 4096
        outcomes["image"] += 1
    elapsed = time.perf_counter() - started
    assert outcomes["image"] > 100 and outcomes["error"] > 500, outcomes  # both paths exercised
    assert elapsed < 5.0, f"fuzz took {elapsed:.1f} s"


# ------------------------------------------------------------------------------------- cv_bridge


@pytest.fixture(scope="module")
def bridge():
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge not importable")
    pytest.importorskip(
        "cv_bridge.boost.cv_bridge_boost", reason="cv_bridge.boost (compiled) not importable"
    )
    return cv_bridge.CvBridge()


@pytest.mark.parametrize("encoding", INPUT_ENCODINGS)
def test_equivalence_with_cv_bridge(bridge, encoding):
    from sensor_msgs.msg import Image

    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    frame = encode_rgb(rgb, encoding, pad=4)
    msg = Image(
        height=frame.height,
        width=frame.width,
        encoding=encoding,
        step=frame.step,
        is_bigendian=frame.is_bigendian,
        data=frame.data,
    )
    try:
        theirs = bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
    except Exception as exc:  # noqa: BLE001 - a distribution whose cv_bridge lacks the code
        pytest.skip(f"this cv_bridge cannot convert {encoding} to rgb8: {exc}")
    difference = np.abs(decode(frame).rgb.astype(int) - theirs.astype(int)).max()
    if encoding.startswith("bayer_") and encoding.endswith("16"):
        assert difference <= 1  # we scale to 8 bits before demosaicing, cv_bridge after
    else:
        assert difference == 0
