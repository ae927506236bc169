"""Turn uploaded bytes into a model input, robustly.

Uploads come from strangers: they may be empty, huge, truncated, not images at all, or images
in modes a model never saw in training (CMYK, 16-bit, palette, transparent, animated, rotated
by an EXIF tag). :func:`decode_image` turns all of that into one thing, an 8-bit RGB
:class:`PIL.Image.Image` the way a person would see it, or raises :class:`ImageError` with a
one-line message the dashboard can show as is. :func:`to_tensor` then applies a model's
:class:`Preprocess`; :func:`denormalize` undoes it so the dashboard can show what the model
actually sees.

:class:`ImageError` is the only exception the public functions raise (it subclasses
``ValueError``). Nothing here changes Pillow's global settings (``MAX_IMAGE_PIXELS``,
``LOAD_TRUNCATED_IMAGES``): other code in the process may rely on them.

Command line: ``python -m se_core.images check FILE`` prints ``ok WxH MODE`` (exit 0) or one
line ``error: <reason>`` on stderr (exit 2).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

__all__ = [
    "ALLOWED_FORMATS",
    "INTERPOLATIONS",
    "MAX_BYTES",
    "MAX_PIXELS",
    "ImageError",
    "Preprocess",
    "decode_image",
    "denormalize",
    "image_digest",
    "load_image",
    "to_tensor",
]

#: Largest accepted image, in pixels (width x height, of the first frame). 40 MP covers any
#: phone or DSLR photo while bounding memory: the decoded RGB image is at most ~120 MB. It is
#: checked from the header, before any pixel is decoded, so a "decompression bomb" (a tiny
#: file that claims a gigantic size) costs nothing. Stricter than Pillow's own default limit
#: (``Image.MAX_IMAGE_PIXELS``, ~89 MP), which we leave untouched.
MAX_PIXELS = 40_000_000

#: Largest accepted upload, in bytes (50 MiB). Checked before the bytes are parsed at all.
MAX_BYTES = 50 * 1024 * 1024

#: Pillow format names we agree to parse. Restricting ``Image.open`` to these keeps exotic,
#: rarely audited decoders (and EPS, which shells out to Ghostscript) away from uploads.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")

#: Names accepted by :attr:`Preprocess.interpolation`.
INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

_FORMATS_TEXT = "PNG, JPEG, WebP, BMP, TIFF, GIF"
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageError(ValueError):
    """An upload that cannot become a model input; ``str()`` is one line: what, and what to do.

    The only exception type the public functions of this module raise, so callers (the
    dashboard, the CLI) need exactly one ``except`` and can show the message verbatim.
    """

    def __init__(self, message: object) -> None:
        # Collapse whitespace so the message is always one line, whatever a decoder said.
        text = " ".join(str(message).split()) or "invalid image"
        super().__init__(text)


def _short(exc: BaseException, limit: int = 160) -> str:
    """One-line, bounded description of a decoder exception, for inclusion in a message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_bytes(data: object) -> bytes:
    """Accept bytes-like input (bytes, bytearray, memoryview); anything else is an ImageError."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise ImageError(
        f"expected the file's bytes, got {type(data).__name__}; pass the uploaded file's content"
    )


def _check_background(background: object) -> tuple[int, int, int]:
    """Validate the composite colour: three ints in 0..255."""
    try:
        values = tuple(background)  # type: ignore[call-overload]
        ok = len(values) == 3 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255
            for v in values
        )
    except TypeError:
        ok = False
    if not ok:
        raise ImageError(
            f"invalid background {background!r}: give three integers 0..255, e.g. (255, 255, 255)"
        )
    return (int(values[0]), int(values[1]), int(values[2]))


def _open_checked(data: bytes) -> Image.Image:
    """Open (header only) and refuse empty, oversized, unreadable or bomb-sized input."""
    if len(data) == 0:
        raise ImageError("empty file: the upload has zero bytes; upload the image file again")
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"file too large: {len(data):,} bytes exceeds the {MAX_BYTES // (1024 * 1024)} MiB "
            "limit; upload a smaller or more compressed image"
        )
    try:
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"image too large: {_short(exc)}; the limit is {MAX_PIXELS:,} pixels, "
            "upload a smaller image"
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            "not an image: the file's bytes are not a format Pillow can read "
            f"({_FORMATS_TEXT}); upload one of those"
        ) from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on hostile input
        raise ImageError(
            f"corrupt image: the header could not be parsed ({_short(exc)}); "
            "re-save the image and upload it again"
        ) from None
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(
            f"empty image: it claims a size of {width}x{height} pixels; upload an image with "
            "at least one pixel"
        )
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"image too large: {width}x{height} = {width * height:,} pixels exceeds the "
            f"{MAX_PIXELS:,} pixel limit; downscale it before uploading"
        )
    return img


def _sixteen_to_8(arr: np.ndarray) -> np.ndarray:
    """Map 0..65535 onto 0..255 by rounding ``v / 257`` (65535 / 255 = 257 exactly)."""
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _float_to_8(arr: np.ndarray) -> np.ndarray:
    """Min/max-stretch a float image to 0..255; NaN/inf become the minimum; constant -> 0."""
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, np.uint8)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    arr = np.where(finite, arr, lo)
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.rint((arr - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def _composite(rgba: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Paint straight-alpha RGBA over an opaque background ("over" operator), return RGB."""
    out = Image.new("RGB", rgba.size, background)
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB, compositing transparency onto ``background``."""
    mode = img.mode
    transparency = img.info.get("transparency")
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            gray = _float_to_8(arr)
        elif mode == "I" and (arr.min() < 0 or arr.max() > 65535):
            # 32-bit integer data outside the 16-bit range: no convention, stretch it.
            gray = _float_to_8(arr)
        else:
            gray = _sixteen_to_8(arr)
        out = Image.fromarray(gray, "L")
        if isinstance(transparency, int) and mode != "F":
            alpha = np.where(arr == transparency, 0, 255).astype(np.uint8)
            out = Image.merge("RGBA", (out, out, out, Image.fromarray(alpha, "L")))
            return _composite(out, background)
        return out.convert("RGB")
    has_alpha = "A" in img.getbands() or mode in ("RGBa", "La", "PA") or transparency is not None
    if mode == "RGB" and not has_alpha:
        return img.copy()
    try:
        if has_alpha:
            return _composite(img.convert("RGBA"), background)
        return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - e.g. LAB or other modes without a conversion
        raise ImageError(
            f"unsupported colour mode {mode!r} ({_short(exc)}); re-save the image as RGB"
        ) from None


def _decode(data: object, background: object) -> tuple[Image.Image, str]:
    """Decode to RGB; also return the file's original Pillow mode (for the CLI report)."""
    with warnings.catch_warnings():
        # Pillow warns (rather than raises) between MAX_IMAGE_PIXELS and twice that: make it
        # an error so a bomb never gets as far as decoding. Pillow's UserWarnings about hostile
        # input ("Corrupt EXIF data", ...) say nothing the caller can act on: silence them.
        # Scoped to this call; the process-wide filters are restored on exit.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return _decode_quiet(data, background)


def _decode_quiet(data: object, background: object) -> tuple[Image.Image, str]:
    """The body of :func:`_decode`, run under its warning filters."""
    bg = _check_background(background)
    raw = _as_bytes(data)
    img = _open_checked(raw)
    original_mode = img.mode
    try:
        # Animated GIF/WebP/APNG: Image.open leaves us on frame 0, which is what we use.
        img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large: {_short(exc)}; upload a smaller image") from None
    except OSError as exc:
        if "truncated" in str(exc):
            raise ImageError(
                "truncated image: the file ends before all pixels were read; "
                "upload the complete file"
            ) from None
        raise ImageError(
            f"corrupt image: the pixels could not be decoded ({_short(exc)}); "
            "re-save the image and upload it again"
        ) from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on hostile input
        raise ImageError(
            f"corrupt image: the pixels could not be decoded ({_short(exc)}); "
            "re-save the image and upload it again"
        ) from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - broken EXIF is common; the pixels are still fine
        pass
    try:
        rgb = _to_rgb(img, bg)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError(
            f"unsupported image ({original_mode!r}: {_short(exc)}); re-save the image as RGB "
            "PNG or JPEG and upload it again"
        ) from None
    rgb.info.clear()  # drop EXIF/ICC etc.: they no longer describe these pixels
    return rgb, original_mode


def decode_image(
    data: bytes, *, background: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """Decode uploaded bytes into an 8-bit RGB image, as a viewer would display it.

    Why each step:

    - the EXIF orientation tag is applied, because phones store photos sideways and rely on it;
    - CMYK, palette, grayscale (``1``/``L``/``LA``) and RGBA become RGB, because models are
      trained on RGB;
    - transparency is composited onto ``background`` -- white by default, because that is how
      a browser shows a transparent PNG on a white page, i.e. what the user believes the image
      looks like;
    - 16-bit images (``I;16``, and ``I`` within 0..65535) are scaled ``v -> round(v / 257)``,
      so the full 0..65535 range maps onto 0..255 (not clipped); ``I`` data outside that range
      and float (``F``) images are min/max stretched to 0..255 (a constant image becomes
      black), since float images have no agreed range;
    - animated GIF/WebP/APNG use their first frame;
    - truncated, corrupt, empty, non-image, over-``MAX_BYTES`` or over-``MAX_PIXELS`` input
      raises :class:`ImageError` (the size check happens before decoding).
    """
    return _decode(data, background)[0]


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input; one per model, stored next to its weights.

    - ``size``: (H, W) of the tensor the model takes.
    - ``mean``/``std``: per-channel normalization on the 0..1 scale (RGB order).
    - ``resize``: if set, the shorter side is scaled to this many pixels (aspect kept), then
      the centre ``size`` is cropped (the ImageNet recipe; needs ``resize >= max(size)``).
      If ``None``, the image is resized straight to ``size`` (aspect not kept), which is what
      CIFAR 32x32 models want: their training images were whole 32x32 pictures.
    - ``interpolation``: one of :data:`INTERPOLATIONS`; downscaling is always antialiased.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int | None = None
    interpolation: str = "bilinear"

    def describe(self) -> str:
        """The pipeline in one line, e.g. ``resize 256, crop 224x224 (bicubic), mean (...), std (...)``."""
        h, w = self.size
        first = f"resize {self.resize}, crop {h}x{w}" if self.resize else f"resize to {h}x{w}"
        mean = ", ".join(f"{v:.3f}" for v in self.mean)
        std = ", ".join(f"{v:.3f}" for v in self.std)
        return f"{first} ({self.interpolation}), mean ({mean}), std ({std})"

    def __post_init__(self) -> None:
        """Validate and normalize to tuples, so bad configs fail at construction."""
        try:
            size = tuple(int(v) for v in self.size)
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)
        except (TypeError, ValueError) as exc:
            raise ImageError(f"invalid Preprocess ({_short(exc)}); see its docstring") from None
        if len(size) != 2 or min(size) < 1:
            raise ImageError(f"invalid Preprocess size {self.size!r}: give (H, W), both >= 1")
        if len(mean) != 3 or not all(np.isfinite(mean)):
            raise ImageError(f"invalid Preprocess mean {self.mean!r}: give three finite floats")
        if len(std) != 3 or not all(np.isfinite(std)) or min(std) <= 0:
            raise ImageError(f"invalid Preprocess std {self.std!r}: give three floats > 0")
        if self.resize is not None and (
            isinstance(self.resize, bool)
            or not isinstance(self.resize, (int, np.integer))
            or self.resize < max(size)
        ):
            raise ImageError(
                f"invalid Preprocess resize {self.resize!r}: use None or an int >= max(size) "
                f"= {max(size)}, so the centre crop fits"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ImageError(
                f"invalid Preprocess interpolation {self.interpolation!r}: use one of "
                f"{', '.join(INTERPOLATIONS)}"
            )
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if self.resize is not None:
            object.__setattr__(self, "resize", int(self.resize))


def _resized(img: Image.Image, pre: Preprocess) -> Image.Image:
    """Resize (and centre-crop) to ``pre.size`` in one PIL call.

    The crop box is computed in source coordinates and passed to ``Image.resize(box=...)``,
    so a 10000x1 image never becomes a 2.56-megapixel-wide intermediate. PIL widens its filter
    by the scale factor, i.e. downscaling is antialiased.
    """
    height, width = pre.size
    resample = INTERPOLATIONS[pre.interpolation]
    if pre.resize is None:
        return img.resize((width, height), resample)
    src_w, src_h = img.size
    scale = pre.resize / min(src_w, src_h)
    box_w, box_h = width / scale, height / scale
    left, top = (src_w - box_w) / 2, (src_h - box_h) / 2
    return img.resize((width, height), resample, box=(left, top, left + box_w, top + box_h))


def to_tensor(img: Image.Image, pre: Preprocess) -> torch.Tensor:
    """Apply ``pre`` to an image: a 1x3xHxW float32 tensor, normalized, ready for the model.

    Non-RGB input is first converted as :func:`decode_image` would (transparency on white).
    """
    if not isinstance(img, Image.Image):
        raise ImageError(
            f"expected a PIL image, got {type(img).__name__}; decode the bytes with decode_image"
        )
    if not isinstance(pre, Preprocess):
        raise ImageError(f"expected a Preprocess, got {type(pre).__name__}")
    try:
        if img.width < 1 or img.height < 1:
            raise ImageError(f"empty image ({img.width}x{img.height}); upload a real image")
        rgb = img if img.mode == "RGB" else _to_rgb(img, (255, 255, 255))
        arr = np.asarray(_resized(rgb, pre), dtype=np.float32) / 255.0
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageError(f"could not preprocess the image ({_short(exc)})") from None
    x = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0).contiguous()


def denormalize(x: torch.Tensor, pre: Preprocess) -> np.ndarray:
    """Undo ``pre``'s normalization: HxWx3 uint8, i.e. what the model actually sees, to show it.

    Accepts 1x3xHxW or 3xHxW; values are rounded and clipped to 0..255.
    """
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ImageError(f"expected a 1x3xHxW or 3xHxW tensor, got shape {tuple(x.shape)}")
    t = x.detach().to("cpu", torch.float32)
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(3, 1, 1)
    t = torch.nan_to_num((t * std + mean) * 255.0)
    return t.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def load_image(data: bytes, pre: Preprocess) -> tuple[Image.Image, torch.Tensor]:
    """Decode and preprocess in one call: (RGB image to display, 1x3xHxW model input)."""
    img = decode_image(data)
    return img, to_tensor(img, pre)


def image_digest(data: bytes) -> str:
    """SHA-256 hex of the raw upload: a cache key that ignores file name and upload time."""
    return hashlib.sha256(_as_bytes(data)).hexdigest()


# --------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(
            f"error: {' '.join(message.split())} (usage: python -m se_core.images check FILE)",
            file=sys.stderr,
        )
        raise SystemExit(2)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration.

    libtiff (and other C decoders) print diagnostics such as "Using code not yet in table."
    straight to fd 2, bypassing Python; the CLI promises a single ``error:`` line. Only used by
    the CLI (a single-threaded process): in the dashboard fd 2 is the server's log.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        saved = -1
    if saved < 0:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check(path: str) -> int:
    """``check`` subcommand: decode FILE, print ``ok WxH MODE`` or one ``error:`` line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # one byte over is enough to refuse it
    except OSError as exc:
        reason = exc.strerror or _short(exc)
        print(f"error: cannot read {path}: {reason}", file=sys.stderr)
        return 2
    try:
        with _native_stderr_silenced():
            img, mode = _decode(data, (255, 255, 255))
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"ok {img.width}x{img.height} {mode}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``check FILE``; returns the exit code (0 ok, 2 error)."""
    parser = _Parser(prog="python -m se_core.images", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="decode FILE like the dashboard would; print ok/error")
    check.add_argument("file", metavar="FILE")
    args = parser.parse_args(argv)
    try:
        return _check(args.file)
    except Exception as exc:  # noqa: BLE001 - the CLI never prints a traceback
        print(f"error: internal error: {_short(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
