"""Tests for se_core.data.images: every upload is built here with PIL/numpy (no files shipped)."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from se_core.data import images
from se_core.data.images import (
    MAX_PIXELS,
    ImageError,
    Preprocess,
    decode_image,
    denormalize,
    image_digest,
    load_image,
    to_tensor,
)

REPO = Path(__file__).parents[1]
CIFAR = Preprocess(size=(32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
IMAGENET = Preprocess(
    size=(224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize=256
)


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def blocks(w: int = 16, h: int = 8) -> Image.Image:
    """Few flat colours: exact through GIF's palette, near-exact through lossy codecs."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (200, 30, 30)
    arr[:, w // 2 :] = (30, 30, 200)
    return Image.fromarray(arr, "RGB")


def assert_one_line(err: ImageError) -> None:
    msg = str(err)
    assert msg and "\n" not in msg and "\r" not in msg


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with a few bytes of (bogus) pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- valid input


@pytest.mark.parametrize(
    ("fmt", "kw", "tol"),
    [
        ("PNG", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("GIF", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 90}, 8),
        ("JPEG", {"quality": 95}, 8),
    ],
)
def test_valid_formats_decode_to_rgb(fmt: str, kw: dict, tol: int) -> None:
    src = blocks()
    img = decode_image(encode(src, fmt, **kw))
    assert img.mode == "RGB" and img.size == (16, 8)
    diff = np.abs(np.asarray(img, np.int16) - np.asarray(src, np.int16))
    if tol == 0:
        assert diff.max() == 0
    else:  # lossy: chroma subsampling smears the colour edge, so compare on average
        assert diff.mean() <= tol


@pytest.mark.parametrize("mode", ["L", "LA", "1", "RGBA", "RGB", "I;16"])
def test_modes_become_8bit_rgb(mode: str) -> None:
    img = decode_image(encode(Image.new(mode, (5, 3)), "PNG"))
    assert img.mode == "RGB" and img.size == (5, 3)


def test_one_pixel_and_very_wide() -> None:
    one = decode_image(encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"))
    assert one.size == (1, 1) and one.getpixel((0, 0)) == (10, 20, 30)
    assert to_tensor(one, CIFAR).shape == (1, 3, 32, 32)
    assert to_tensor(one, IMAGENET).shape == (1, 3, 224, 224)

    wide = decode_image(encode(noise(10000, 1), "PNG"))
    assert wide.size == (10000, 1)
    start = time.perf_counter()
    assert to_tensor(wide, CIFAR).shape == (1, 3, 32, 32)
    # resize=256 on a 10000x1 image: must not build a 2.56M x 256 intermediate
    assert to_tensor(wide, IMAGENET).shape == (1, 3, 224, 224)
    assert time.perf_counter() - start < 5


def test_cmyk_jpeg() -> None:
    data = encode(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG", quality=95)
    img = decode_image(data)
    assert img.mode == "RGB" and img.size == (10, 10)
    r, g, b = img.getpixel((5, 5))
    assert r > 230 and g < 25 and b < 25  # C=0 M=Y=255 K=0 is red


def test_16bit_ramp_maps_to_full_8bit_range() -> None:
    exact = np.arange(256, dtype=np.uint16).reshape(1, 256) * 257  # 0, 257, ..., 65535
    img = decode_image(encode(Image.fromarray(exact), "PNG"))
    assert Image.open(io.BytesIO(encode(Image.fromarray(exact), "PNG"))).mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(img)[0, :, 0], np.arange(256))

    full = np.arange(65536, dtype=np.uint32).astype(np.uint16).reshape(256, 256)
    out = np.asarray(decode_image(encode(Image.fromarray(full), "PNG")))[..., 0].ravel()
    assert out[0] == 0 and out[-1] == 255  # scaled, not clipped (clipping gives 255 from 255 on)
    assert np.all(np.diff(out.astype(int)) >= 0)
    assert np.abs(out.astype(float) - np.arange(65536) / 257.0).max() <= 0.5


def test_float_image_min_max_stretched() -> None:
    arr = np.linspace(-3.0, 5.0, 16, dtype=np.float32).reshape(4, 4)
    img = decode_image(encode(Image.fromarray(arr, "F"), "TIFF"))
    gray = np.asarray(img)[..., 0]
    assert gray.min() == 0 and gray.max() == 255


def test_rgba_transparency_composited_on_white() -> None:
    src = Image.new("RGBA", (3, 1))
    src.putpixel((0, 0), (255, 0, 0, 0))
    src.putpixel((1, 0), (255, 0, 0, 255))
    src.putpixel((2, 0), (0, 0, 0, 128))
    img = decode_image(encode(src, "PNG"))
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 0)) == (255, 0, 0)
    assert all(abs(c - 127) <= 1 for c in img.getpixel((2, 0)))
    black = decode_image(encode(src, "PNG"), background=(0, 0, 0))
    assert black.getpixel((0, 0)) == (0, 0, 0)


def test_palette_with_transparency() -> None:
    src = Image.new("P", (2, 1))
    src.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    src.putpixel((0, 0), 0)
    src.putpixel((1, 0), 1)
    for fmt in ("PNG", "GIF"):
        img = decode_image(encode(src, fmt, transparency=0))
        assert img.getpixel((0, 0)) == (255, 255, 255), fmt
        assert img.getpixel((1, 0)) == (255, 0, 0), fmt
        assert decode_image(encode(src, fmt, transparency=0), background=(0, 0, 255)).getpixel(
            (0, 0)
        ) == (0, 0, 255)


@pytest.mark.parametrize(("fmt", "kw"), [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_animated_uses_first_frame(fmt: str, kw: dict) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **kw)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    assert decode_image(data).getpixel((4, 4)) == (255, 0, 0)


def exif_rotated_jpeg() -> bytes:
    """64x32 stored image with a red top-left corner, EXIF orientation 6 (rotate 90 cw)."""
    arr = np.full((32, 64, 3), (0, 0, 255), np.uint8)
    arr[:16, :16] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif)


def test_exif_orientation_applied() -> None:
    img = decode_image(exif_rotated_jpeg())
    assert img.size == (32, 64)  # width and height swapped
    # 90 deg clockwise: stored top-left ends up top-right
    r, g, b = img.getpixel((32 - 8, 8))
    assert r > 200 and b < 60
    r, g, b = img.getpixel((8, 8))
    assert b > 200 and r < 60


# ----------------------------------------------------------------------------- refused input


def test_zero_bytes_and_not_an_image() -> None:
    with pytest.raises(ImageError, match="empty") as err:
        decode_image(b"")
    assert_one_line(err.value)
    with pytest.raises(ImageError, match="not an image") as err:
        decode_image(b"this is a text file, even if it is called cat.png\n")
    assert_one_line(err.value)


def test_too_many_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_BYTES", 100)
    with pytest.raises(ImageError, match="too large"):
        decode_image(encode(noise(32, 32), "PNG"))


def test_unsupported_format_refused() -> None:
    with pytest.raises(ImageError, match="not an image"):
        decode_image(encode(blocks(), "ICO"))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(fmt: str) -> None:
    data = encode(noise(64, 64), fmt)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(ImageError, match="truncated") as err:
        decode_image(data[: len(data) // 2])
    assert_one_line(err.value)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (20000, 20000),  # 400 MP: Pillow's own DecompressionBombError
        (10000, 10000),  # 100 MP: Pillow only warns; we make that an error
        (8000, 8000),  # 64 MP: under Pillow's limit, over ours
        (1, MAX_PIXELS + 1),
    ],
)
def test_decompression_bomb_refused_from_header(width: int, height: int) -> None:
    data = png_header_only(width, height)
    assert len(data) < 200
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large") as err:  # not "corrupt": never decoded
        decode_image(data)
    assert time.perf_counter() - start < 1
    assert_one_line(err.value)


def test_real_bomb_small_content() -> None:
    big = Image.new("1", (7000, 6000))  # 42 MP, 5 MB in memory, a few kB as PNG
    data = encode(big, "PNG")
    assert len(data) < 100_000
    with pytest.raises(ImageError, match="too large"):
        decode_image(data)


def test_zero_sized_image_refused() -> None:
    with pytest.raises(ImageError):
        decode_image(png_header_only(0, 10))


def test_bad_arguments_raise_image_error() -> None:
    with pytest.raises(ImageError):
        decode_image("not bytes")  # type: ignore[arg-type]
    with pytest.raises(ImageError):
        decode_image(encode(blocks(), "PNG"), background=(0, 0, 256))
    with pytest.raises(ImageError):
        Preprocess(size=(32, 32), mean=(0, 0, 0), std=(0, 1, 1))
    with pytest.raises(ImageError):
        Preprocess(size=(224, 224), mean=(0, 0, 0), std=(1, 1, 1), resize=200)
    with pytest.raises(ImageError):
        Preprocess(size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1), interpolation="cubic-ish")
    with pytest.raises(ImageError):
        denormalize(torch.zeros(1, 1, 4, 4), CIFAR)


# ----------------------------------------------------------------------------- tensors


def test_to_tensor_shape_and_normalization() -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 128))
    x = to_tensor(img, CIFAR)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    expected = (torch.tensor([255, 0, 128]) / 255.0 - torch.tensor(CIFAR.mean)) / torch.tensor(
        CIFAR.std
    )
    torch.testing.assert_close(x[0, :, 10, 10], expected.float(), atol=1e-5, rtol=0)


def test_resize_then_center_crop() -> None:
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)
    arr[:, 32:] = (0, 0, 255)
    pre = Preprocess(size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1), resize=32)
    seen = denormalize(to_tensor(Image.fromarray(arr), pre), pre)
    assert seen.shape == (32, 32, 3)
    np.testing.assert_array_equal(seen[:, :16], arr[:, 16:32])  # centre crop, columns 16..47
    np.testing.assert_array_equal(seen[:, 16:], arr[:, 32:48])


def test_denormalize_round_trip() -> None:
    src = noise(32, 32, seed=3)
    img, x = load_image(encode(src, "PNG"), CIFAR)
    seen = denormalize(x, CIFAR)
    assert seen.dtype == np.uint8 and seen.shape == (32, 32, 3)
    assert np.abs(seen.astype(int) - np.asarray(src, int)).max() <= 1
    assert np.abs(denormalize(x[0], CIFAR).astype(int) - np.asarray(img, int)).max() <= 1


def test_image_digest() -> None:
    data = encode(blocks(), "PNG")
    assert image_digest(data) == image_digest(bytearray(data))
    assert len(image_digest(data)) == 64 and image_digest(data) != image_digest(data + b"\0")


# ----------------------------------------------------------------------------- fuzzing

VALID_PNG = encode(Image.new("RGBA", (6, 5), (10, 200, 30, 128)), "PNG")
MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
]
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def decode_or_image_error(data: bytes) -> None:
    try:
        img = decode_image(data)
    except ImageError as err:
        assert_one_line(err)
    else:
        assert img.mode == "RGB" and img.width >= 1 and img.height >= 1


@FUZZ
@given(st.sampled_from(MAGIC), st.binary(max_size=600))
def test_fuzz_arbitrary_bytes(prefix: bytes, tail: bytes) -> None:
    decode_or_image_error(prefix + tail)


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(VALID_PNG) - 1), st.integers(0, 255)), max_size=6),
    st.integers(1, len(VALID_PNG)),
    st.binary(max_size=20),
)
def test_fuzz_mutated_png(edits: list[tuple[int, int]], cut: int, extra: bytes) -> None:
    data = bytearray(VALID_PNG)
    for pos, value in edits:
        data[pos] = value
    decode_or_image_error(bytes(data[:cut]) + extra)


# ----------------------------------------------------------------------------- command line


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "se_core.images", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_ok_and_error_subprocess(tmp_path: Path) -> None:
    good = tmp_path / "cmyk.jpg"
    good.write_bytes(encode(Image.new("CMYK", (10, 10)), "JPEG"))
    res = run_cli("check", str(good))
    assert (res.returncode, res.stdout.strip(), res.stderr) == (0, "ok 10x10 CMYK", "")

    text = tmp_path / "notes.png"
    text.write_text("hello, not a picture\n")
    res = run_cli("check", str(text))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("error: not an image") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr

    # libtiff prints "Using code not yet in table." to fd 2 itself; the CLI must hide it
    data = encode(noise(64, 64), "TIFF", compression="tiff_lzw")
    (tmp_path / "bad.tif").write_bytes(data[:8] + bytes(200) + data[208:])
    res = run_cli("check", str(tmp_path / "bad.tif"))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("error: corrupt image") and res.stderr.count("\n") == 1

    res = run_cli("check", str(tmp_path / "missing.png"))
    assert res.returncode == 2 and res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr + res.stdout


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = images.main(list(args))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "rgb.png": (encode(noise(32, 32), "PNG"), "ok 32x32 RGB"),
        "rotated.jpg": (exif_rotated_jpeg(), "ok 32x64 RGB"),
        "pal.gif": (encode(blocks(), "GIF"), "ok 16x8 P"),
        "deep.png": (encode(Image.fromarray(np.zeros((3, 4), np.uint16)), "PNG"), "ok 4x3 I;16"),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert cli(capsys, "check", str(tmp_path / name)) == (0, expected + "\n", ""), name

    errors = {
        "empty.png": b"",
        "trunc.jpg": encode(noise(64, 64), "JPEG")[:500],
        "bomb.png": png_header_only(20000, 20000),
    }
    for name, data in errors.items():
        (tmp_path / name).write_bytes(data)
        code, out, err = cli(capsys, "check", str(tmp_path / name))
        assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, name

    for args in ((), ("check",), ("frobnicate", "x"), ("check", str(tmp_path))):
        code, out, err = cli(capsys, *args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, args
        assert "Traceback" not in err
