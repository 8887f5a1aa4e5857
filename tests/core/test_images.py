"""Safe decoding of whatever a customer or a catalog sends: clear errors, normalised RGB out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visearch.core.errors import ImageError
from visearch.core.images import decode_image, load_image_file

LIMIT = 40_000_000
SAMPLE_JPEG = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery" / "images" / "banana.jpg"


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"%PDF-1.4\n%\xe2\xe3\n1 0 obj <<>> endobj\n%%EOF", "PDF document"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML page"),
        (b"just some words", "not an image: text"),
    ],
)
def test_not_an_image(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        decode_image(data, LIMIT)


def test_truncated_jpeg() -> None:
    data = SAMPLE_JPEG.read_bytes()
    with pytest.raises(ImageError, match=r"broken|truncated"):
        decode_image(data[: len(data) // 3], LIMIT)


def test_huge_dimensions_refused_before_decoding() -> None:
    data = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(data) < 200_000  # tiny on disk, 400 megapixels once decoded
    with pytest.raises(ImageError, match="too large"):
        decode_image(data, LIMIT)
    smaller = encode(Image.new("1", (7000, 7000)), "PNG")  # below Pillow's own guard, above ours
    with pytest.raises(ImageError, match="7000x7000"):
        decode_image(smaller, LIMIT)


def test_tiny_image_refused() -> None:
    with pytest.raises(ImageError, match="too small"):
        decode_image(encode(Image.new("RGB", (1, 1)), "PNG"), LIMIT)


def test_transparent_png_goes_onto_white() -> None:
    img = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    out = decode_image(encode(img, "PNG"), LIMIT)
    assert out.mode == "RGB" and out.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "I;16", "1"])
def test_other_modes_become_rgb(mode: str) -> None:
    img = Image.new(mode, (16, 16))
    # 16-bit greyscale: PNG (TIFF is refused, tests/core/test_image_bounds.py)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(encode(img, fmt), LIMIT).mode == "RGB"


def test_sixteen_bit_keeps_its_range() -> None:
    arr = np.full((16, 16), 65535, dtype=np.uint16)
    img = Image.fromarray(arr)
    out = decode_image(encode(img, "PNG"), LIMIT)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # white stays white, not clipped garbage


def test_exif_orientation_applied() -> None:
    img = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes()), LIMIT)
    assert out.size == (20, 40)


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, _, b = decode_image(buf.getvalue(), LIMIT).getpixel((8, 8))
    assert r > 200 and b < 50


def test_large_jpeg_is_decoded_at_reduced_size() -> None:
    big = encode(Image.new("RGB", (4000, 3000), (10, 20, 30)), "JPEG")
    out = decode_image(big, LIMIT, target_size=448)
    assert 448 <= min(out.size) < 3000


def test_load_image_file_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"")
    with pytest.raises(ImageError, match=r"photo\.jpg"):
        load_image_file(bad, LIMIT)
    with pytest.raises(ImageError, match=r"missing\.jpg"):
        load_image_file(tmp_path / "missing.jpg", LIMIT)


def test_palette_and_grey_transparency_go_onto_white() -> None:
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    out = decode_image(encode(pal, "PNG", transparency=0), LIMIT)
    assert out.getpixel((3, 3)) == (255, 255, 255)
    grey = Image.new("LA", (16, 16), (0, 0))
    assert decode_image(encode(grey, "PNG"), LIMIT).getpixel((3, 3)) == (255, 255, 255)


def test_cmyk_colours_survive() -> None:
    out = decode_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95), LIMIT)
    r, g, b = out.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60  # red stays red


def test_animated_webp_uses_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((0, 255, 0), (255, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    r, g, _ = decode_image(buf.getvalue(), LIMIT).getpixel((8, 8))
    assert g > 200 and r < 50


def test_truncated_png_and_zip() -> None:
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(ImageError, match=r"broken|truncated"):
        decode_image(data[: len(data) // 2], LIMIT)
    with pytest.raises(ImageError, match="ZIP"):
        decode_image(b"PK\x03\x04" + b"\x00" * 40, LIMIT)


def test_small_jpeg_is_not_reduced_below_the_hint() -> None:
    out = decode_image(encode(Image.new("RGB", (640, 480)), "JPEG"), LIMIT, target_size=448)
    assert out.size == (640, 480)  # 1/2 scale would be 320x240, under the hint: full size kept
