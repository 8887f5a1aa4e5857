"""Safe image decoding: bytes in, one RGB `PIL.Image` out, or an `ImageError` with a short reason.

Every photo that reaches an encoder (catalog images, messenger uploads, web uploads) comes through
here. What it guards against and normalises:

- empty data, data that is not an image (a PDF, an HTML error page, a ZIP...), truncated files;
- formats nobody photographs in: only `FORMATS` are opened at all (Pillow's other plugins, PSD, ICO,
  EPS, TGA..., never see the bytes), so each accepted photo costs what its pixels cost;
- decompression bombs: the pixel count is read from the header and checked against `max_pixels`
  *before* anything is decoded (Pillow's own bomb error/warning is reported the same way). Decoding
  and converting one picture then holds at most about 8 bytes per allowed pixel (320 MB at the
  default 40 megapixels; WebP, which costs twice that per pixel, may have half as many pixels);
- work that is not pixels: only the first frame of an animation is decoded
  (the frame count is never read, since counting GIF frames reads the whole file), and a JPEG with
  more than `MAX_JPEG_SCANS` scans (each scan walks the whole picture again) is refused unread;
- conversions: a large picture is shrunk to about the caller's size first (whole-factor box
  filter), so a 40-megapixel 16-bit or RGBA image costs one decode, not several full-size copies;
- images too small to say anything (below `MIN_SIDE` pixels on a side);
- EXIF orientation (phone photos), transparency (composited onto white), CMYK, 16-bit and 32-bit
  greyscale, 1-bit and palette images, animated GIF/WebP (the first frame).

No global state is touched: `Image.MAX_IMAGE_PIXELS` stays as it is, the size check is ours.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from visearch.core.errors import ImageError, ImageProblem

#: smallest accepted width and height, in pixels
MIN_SIDE = 8

#: background colour that transparent pixels are composited onto
BACKGROUND = (255, 255, 255)

#: the formats a photo may come in, by Pillow's names: what phones, messengers, browsers and shops
#: produce (a camera JPEG with extra pictures opens as "MPO"). Anything else is refused before a
#: decoder runs. Not TIFF: its tiles may be far larger than the picture (a 255 KB TIFF of 16x16
#: pixels made libtiff hold 262 MB, and 4 samples a pixel make that 1 GB), so its cost is not
#: bounded by its pixels, and no phone or shop page sends one.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

#: scans a JPEG may have: encoders write 1 (baseline) to about 12 (progressive); each scan walks
#: every block of the picture again, so a few bytes per scan can cost seconds
MAX_JPEG_SCANS = 100

#: a WebP costs this many times the memory of another format's picture of the same size (Pillow
#: decodes it through libwebp's animation decoder: ~16 bytes a pixel, measured, against <= 8), so
#: it may have this many times fewer pixels: every accepted photo then costs about the same
WEBP_COST = 2

#: Pillow's own bomb guard raises above this many pixels, before our check can name the size
_PILLOW_BOMB_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 0)

# What Pillow raises on broken data varies by format and version.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error, zlib.error)


def decode_image(data: bytes, max_pixels: int, target_size: int | None = None) -> Image.Image:
    """Decode `data` into a loaded RGB image.

    `max_pixels` bounds width x height (checked from the header, before decoding).
    `target_size` is an optional hint: the caller only needs about this many pixels on the shorter
    side, so a JPEG may be decoded at 1/2, 1/4 or 1/8 scale and any other picture is shrunk by a
    whole factor before it is converted (never below the hint). Raises `ImageError` with a short
    reason the user can be shown.
    """
    img = open_image(data, max_pixels)
    fmt = img.format or "image"
    try:
        if target_size and fmt in ("JPEG", "MPO"):
            # Decode at a reduced scale (DCT scaling) when the photo is much bigger than needed.
            img.draft("RGB", (target_size, target_size))
        img.load()  # the first frame only: open_image never moves past it
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"image too large (decompression bomb guard): {_reason(exc)}", ImageProblem.TOO_LARGE
        ) from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"broken or truncated {fmt} image: {_reason(exc)}", ImageProblem.BROKEN) from None

    try:
        oriented = _apply_orientation(img)
        return _to_rgb(_shrink(oriented, target_size) if target_size else oriented)
    except _DECODE_ERRORS as exc:
        raise ImageError(
            f"unsupported {fmt} image (mode {img.mode}): {_reason(exc)}", ImageProblem.UNSUPPORTED
        ) from None


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only and check it: an accepted format, `max_pixels` at most, `MIN_SIDE` at
    least, a sane JPEG. Nothing is decoded; the image is at its first frame. Raises `ImageError`.

    Upload checks call this on its own, so an upload is refused by the same rules a search uses.
    """
    if not data:
        raise ImageError("empty file (0 bytes)", ImageProblem.EMPTY)
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"not an image: {_sniff(data)}", ImageProblem.NOT_AN_IMAGE) from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"image too large: over {_mp(_PILLOW_BOMB_PIXELS)}, the limit is {_mp(max_pixels)}", ImageProblem.TOO_LARGE
        ) from None
    except Image.DecompressionBombWarning:  # only where warnings are turned into errors
        raise ImageError(
            f"image too large: over {_mp(_PILLOW_BOMB_PIXELS // 2)}, the limit is {_mp(max_pixels)}",
            ImageProblem.TOO_LARGE,
        ) from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"broken image header: {_reason(exc)}", ImageProblem.BROKEN) from None

    width, height = img.size
    if width * height > max_pixels:
        raise ImageError(
            f"image too large: {width}x{height} ({_mp(width * height)}), the limit is {_mp(max_pixels)}",
            ImageProblem.TOO_LARGE,
        )
    if img.format == "WEBP" and width * height > max_pixels // WEBP_COST:
        raise ImageError(
            f"image too large: {width}x{height} WebP ({_mp(width * height)}), "
            f"the limit for WebP is {_mp(max_pixels // WEBP_COST)}",
            ImageProblem.TOO_LARGE,
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(
            f"image too small: {width}x{height} pixels, at least {MIN_SIDE}x{MIN_SIDE} needed", ImageProblem.TOO_SMALL
        )
    if img.format in ("JPEG", "MPO") and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
        # entropy-coded data escapes 0xFF, so each FF DA is a scan header (or one in a thumbnail)
        raise ImageError(f"unsupported JPEG: {scans} scans, at most {MAX_JPEG_SCANS}", ImageProblem.UNSUPPORTED)
    return img


def load_image_file(path: str | Path, max_pixels: int, target_size: int | None = None) -> Image.Image:
    """Read and decode an image file; error messages name the path."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file: {exc.strerror or exc}", ImageProblem.UNREADABLE) from None
    try:
        return decode_image(data, max_pixels, target_size=target_size)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}", exc.problem) from None


def _apply_orientation(img: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF Orientation tag says; a broken EXIF block is ignored, not fatal.

    In place: an upright photo (most of them) is not copied.
    """
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(img, in_place=True)
    return img


def _shrink(img: Image.Image, target_size: int) -> Image.Image:
    """Reduce by the largest whole factor that keeps the shorter side at `target_size` or more.

    Why: every later step (transparency, 16-bit and float scaling, the encoder's resize) then works
    on a small copy. A box filter averages, so the modes it cannot average (palette indices, 1-bit,
    16-bit) are widened first.
    """
    factor = min(img.size) // max(target_size, 1)
    if factor < 2:
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode.startswith("I;16"):
        img = img.convert("I")
    return img.reduce(factor)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: transparency onto white, high bit depths scaled, not clipped."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _high_depth_to_rgb(img)
    if mode == "LAB":
        raise ValueError("CIELAB images are not supported")
    # L, 1, P, CMYK, YCbCr, HSV: Pillow's conversions are right for these
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float greyscale to 8-bit, keeping the tonal range."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    else:
        peak = float(arr.max()) if arr.size else 0.0
        # 16-bit data (the common case: PNG/TIFF) spans 0..65535; 8-bit data stored as I stays as is
        scaled = arr / 257.0 if peak > 255 else arr
    grey = np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _sniff(data: bytes) -> str:
    """A cheap guess at what non-image data is, for the error message."""
    head = data[:64]
    stripped = head.lstrip()
    lower = stripped.lower()
    if head.startswith(b"%PDF"):
        return "PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP archive (or an Office document)"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC/HEIF photo (not supported: send JPEG, PNG or WebP)"
        if brand in (b"avif", b"avis"):
            return "AVIF image (not supported: send JPEG, PNG or WebP)"
        return "MP4/QuickTime video"
    for magic, name in _OTHER_IMAGES:
        if head.startswith(magic):
            return f"{name} (not supported: send JPEG, PNG or WebP)"
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "HTML page"
    if lower.startswith(b"<svg") or (lower.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "SVG drawing (vector images are not supported)"
    if lower.startswith(b"<?xml"):
        return "XML document"
    if stripped.startswith((b"{", b"[")):
        return "JSON/text data"
    if head.startswith((b"\x1f\x8b", b"BZh", b"7z\xbc\xaf", b"Rar!")):
        return "compressed archive"
    if head.startswith((b"ID3", b"OggS", b"fLaC")) or (head[:4] == b"RIFF" and head[8:12] == b"WAVE"):
        return "audio file"
    try:
        text = data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return "unknown binary data"
    if all(ch.isprintable() or ch.isspace() for ch in text):
        return "text"
    return "unknown binary data"


#: image formats Pillow could read but FORMATS refuses, by their first bytes (for the message)
_OTHER_IMAGES = (
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"8BPS", "Photoshop document"),
    (b"\x00\x00\x01\x00", "Windows icon"),
    (b"icns", "macOS icon"),
    (b"%!PS", "PostScript/EPS drawing"),
    (b"\xc5\xd0\xd3\xc6", "PostScript/EPS drawing"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000 image"),
    (b"\xffO\xffQ", "JPEG 2000 image"),
    (b"DDS ", "DirectDraw texture"),
    (b"qoif", "QOI image"),
    (b"SIMPLE  =", "FITS image"),
    (b"P1", "Netpbm image"),
    (b"P2", "Netpbm image"),
    (b"P3", "Netpbm image"),
    (b"P4", "Netpbm image"),
    (b"P5", "Netpbm image"),
    (b"P6", "Netpbm image"),
)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} megapixels" if pixels >= 100_000 else f"{pixels} pixels"
