"""Expensive images (issue 13, item 8): what a photo may cost is bounded before it is decoded.

Each costly input is built here with Pillow or by hand (a few bytes to a few hundred KB): a float32
TIFF that once took seconds and 1.5 GB to convert and a TIFF of 16x16 pixels whose one tile makes
libtiff hold 262 MB (TIFF is refused), a 16-bit PNG, a GIF whose logical screen is 65535x65535, a
PNG whose header claims 50000x50000, a GIF whose later frames are bombs, a JPEG with hundreds of
scans, formats nobody photographs in. Then the same files over real HTTP: a search answers 422
with the reason, an upload answers 422 naming images[i] and writes nothing, and a text search is
answered while photos are still being decoded.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.bots.test_api import WRITE, Api, api, api_catalog, run_api
from visearch.core.config import Settings
from visearch.core.errors import EncoderBusyError, ImageError
from visearch.core.images import MAX_JPEG_SCANS, decode_image, open_image
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

LIMIT = 40_000_000


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def float_tiff(side: int) -> bytes:
    """A float32 greyscale TIFF, deflate-compressed: a few KB on disk, 4 bytes a pixel decoded."""
    values = np.zeros((side, side), dtype=np.float32)
    values[:, side // 2 :] = 3.5  # two tones, so the range scaling has something to keep
    return encode(Image.fromarray(values, mode="F"), "TIFF", compression="tiff_adobe_deflate")


def tiled_tiff(side: int, tile: int) -> bytes:
    """A `side` x `side` greyscale TIFF stored as one deflate tile of `tile` x `tile` (all zeros):
    libtiff allocates the whole tile, whatever the picture's size."""
    body = zlib.compress(bytes(tile * tile))
    tags = [
        (256, 3, side),
        (257, 3, side),
        (258, 3, 8),
        (259, 3, 8),
        (262, 3, 1),
        (277, 3, 1),
        (322, 4, tile),
        (323, 4, tile),
        (324, 4, 8 + 2 + 10 * 12 + 4),
        (325, 4, len(body)),
    ]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in tags
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00\x00\x00\x00" + body


def gif_screen(width: int, height: int) -> bytes:
    """A GIF whose logical screen is `width` x `height`, with one 1x1 frame."""
    header = b"GIF89a" + struct.pack("<HH", width, height) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return header + frame + b"\x3b"


def gif_with_bomb_frames(count: int) -> bytes:
    """A red 16x16 GIF followed by `count` frames of 65535x65535: reading any of them raises."""
    first = encode(Image.new("RGB", (16, 16), (255, 0, 0)), "GIF")
    bomb = b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return first[:-1] + bomb * count + b"\x3b"


def png_header(width: int, height: int) -> bytes:
    """A 68-byte PNG whose IHDR claims `width` x `height` RGB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def jpeg_with_scans(extra: int) -> bytes:
    """A small progressive JPEG whose last scan is repeated `extra` more times (libjpeg decodes
    each repeat again: a few bytes per scan, a whole pass over the picture each)."""
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG", progressive=True)
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * extra + b"\xff\xd9"


def peak_python_bytes(fn, *args: object) -> int:
    """Peak bytes traced by tracemalloc while `fn` runs (numpy arrays are traced; Pillow's buffers
    are not, so this sees the float64 copies a conversion makes)."""
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- decode_image: each costly input ------------------------------------------------------------


def test_tiff_is_refused_unread() -> None:
    tiles = tiled_tiff(16, 4096)  # 16x16 pixels; libtiff would hold a 16 MB tile (262 MB at 16384)
    floats = float_tiff(3000)  # 9 megapixels, 36 MB as float32, ~40 KB on disk
    assert len(floats) < 100_000
    Image.open(io.BytesIO(tiles)).load()  # Pillow itself would decode both
    for data in (tiles, floats):
        # before: decoded (the float one through ~200 MB of float64 copies, 1.5 GB at 6300x6300)
        assert peak_python_bytes(_refused, data) < 1_000_000


def _refused(data: bytes) -> None:
    with pytest.raises(ImageError, match=r"^not an image: TIFF image \(not supported: send JPEG, PNG or WebP\)$"):
        decode_image(data, LIMIT, target_size=448)


def test_sixteen_bit_png_is_shrunk_before_it_is_converted() -> None:
    data = encode(Image.fromarray(np.full((2400, 2400), 65535, dtype=np.uint16)), "PNG")
    out = decode_image(data, LIMIT, target_size=448)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert peak_python_bytes(decode_image, data, LIMIT, 448) < 16_000_000  # before: ~140 MB of float64


def test_gif_with_a_65535_square_screen_is_refused_unread() -> None:
    data = gif_screen(65535, 65535)
    assert len(data) < 64
    with pytest.raises(ImageError, match=r"^image too large: over 179\.0 megapixels, the limit is 40\.0 megapixels$"):
        decode_image(data, LIMIT)
    with pytest.raises(ImageError, match=r"^image too large: 7000x7000 \(49\.0 megapixels\), the limit is 40\.0"):
        decode_image(gif_screen(7000, 7000), LIMIT)  # below Pillow's own guard: our limit, with the size


def test_png_claiming_50000_square_is_refused_unread() -> None:
    with pytest.raises(ImageError, match=r"^image too large: over 179\.0 megapixels, the limit is 40\.0 megapixels$"):
        decode_image(png_header(50000, 50000), LIMIT)
    with pytest.raises(ImageError, match="too large"):
        open_image(png_header(50000, 50000), LIMIT)  # the header check uploads use


def test_gif_frame_bigger_than_its_screen_is_refused() -> None:
    screen = gif_screen(16, 16)[:19]  # header + logical screen + palette
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x44\x01\x00"
    with pytest.raises(ImageError, match="too large"):
        decode_image(screen + frame + b"\x3b", LIMIT)


def test_only_the_first_frame_is_ever_read() -> None:
    data = gif_with_bomb_frames(2000)  # frame 2 onwards would raise if anything seeked or counted
    started = time.perf_counter()
    out = decode_image(data, LIMIT, target_size=448)
    assert out.size == (16, 16) and out.getpixel((8, 8)) == (255, 0, 0)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(Image.DecompressionBombError):  # what reading frame 2 does
        Image.open(io.BytesIO(data)).seek(1)


def test_jpeg_with_hundreds_of_scans_is_refused_unread() -> None:
    normal = jpeg_with_scans(0)
    assert decode_image(normal, LIMIT).size == (64, 64)  # an ordinary progressive JPEG is fine
    with pytest.raises(ImageError, match=rf"^unsupported JPEG: \d+ scans, at most {MAX_JPEG_SCANS}$"):
        decode_image(jpeg_with_scans(300), LIMIT)


@pytest.mark.parametrize(
    ("fmt", "says"),
    [
        ("ICO", "Windows icon"),
        ("PPM", "Netpbm image"),
        ("TGA", "unknown binary data"),
        ("PCX", "unknown binary data"),
    ],
)
def test_formats_nobody_photographs_in_are_refused(fmt: str, says: str) -> None:
    data = encode(Image.new("RGB", (32, 32), (0, 128, 0)), fmt)
    Image.open(io.BytesIO(data)).load()  # Pillow itself would decode it
    with pytest.raises(ImageError, match=f"^not an image: {says}"):
        decode_image(data, LIMIT)


def test_webp_may_have_half_the_pixels() -> None:
    limit = 20_000
    assert decode_image(encode(Image.new("RGB", (140, 140)), "PNG"), limit).size == (140, 140)  # 19,600 px
    with pytest.raises(
        ImageError, match=r"^image too large: 140x140 WebP \(19600 pixels\), the limit for WebP is 10000 pixels$"
    ):
        decode_image(encode(Image.new("RGB", (140, 140)), "WEBP"), limit)
    assert decode_image(encode(Image.new("RGB", (100, 100)), "WEBP"), limit).size == (100, 100)


def test_shrinking_keeps_orientation_palette_and_transparency() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees
    rotated = decode_image(encode(Image.new("RGB", (2000, 1000), (0, 0, 255)), "PNG", exif=exif.tobytes()), LIMIT, 448)
    assert rotated.height > rotated.width >= 448
    palette = Image.new("P", (1000, 1000), 0)
    palette.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    see_through = decode_image(encode(palette, "PNG", transparency=0), LIMIT, 448)
    assert see_through.getpixel((10, 10)) == (255, 255, 255) and min(see_through.size) >= 448
    red = decode_image(encode(palette, "GIF"), LIMIT, 448)
    assert red.getpixel((10, 10)) == (255, 0, 0)


# --- the decode pool: a bound on photos decoded at once ------------------------------------------


async def test_decodes_run_on_their_own_bounded_pool(api_catalog: Settings, offline_encoder) -> None:
    settings = api_catalog.model_copy(update={"max_concurrent_decodes": 2, "max_pending": 8})
    service = SearchService(offline_encoder, open_store(settings), settings)
    photo = encode(Image.new("RGB", (1200, 900), (200, 40, 40)), "PNG")
    threads: set[str] = set()

    def note_thread(data: bytes) -> Image.Image:
        threads.add(threading.current_thread().name)
        return decode_image(data, LIMIT, 448)

    service._decode_query_photo = note_thread  # type: ignore[method-assign] - observe which threads decode
    try:
        decoded = await asyncio.gather(*(service.decode_photos([photo]) for _ in range(8)))
        assert all(len(d) == 1 and min(d[0].size) >= 448 for d in decoded)
        assert len(threads) <= 2 and all(name.startswith("visearch-decode") for name in threads)
        assert service.decoding == 0
    finally:
        await service.close()


async def test_one_query_too_many_waiting_for_decodes_is_told_to_retry(api_catalog: Settings, offline_encoder) -> None:
    settings = api_catalog.model_copy(update={"max_pending": 2})
    service = SearchService(offline_encoder, open_store(settings), settings)
    photo = encode(Image.new("RGB", (64, 64)), "PNG")
    try:
        results = await asyncio.gather(*(service.decode_photos([photo]) for _ in range(3)), return_exceptions=True)
        assert [type(r).__name__ for r in results] == ["list", "list", "EncoderBusyError"]
        assert isinstance(results[2], EncoderBusyError) and "VISEARCH_MAX_PENDING=2" in str(results[2])
        assert service.decoding == 0
    finally:
        await service.close()


# --- over HTTP -------------------------------------------------------------------------------------


async def test_search_with_costly_images_gets_422_with_the_reason(api: Api) -> None:
    cases = [
        (
            gif_screen(65535, 65535),
            "screen.gif",
            "image: image too large: over 179.0 megapixels, the limit is 40.0 megapixels",
        ),
        (
            png_header(50000, 50000),
            "claims.png",
            "image: image too large: over 179.0 megapixels, the limit is 40.0 megapixels",
        ),
        (jpeg_with_scans(300), "scans.jpg", f"at most {MAX_JPEG_SCANS}"),
        (encode(Image.new("RGB", (32, 32)), "ICO"), "icon.ico", "image: not an image: Windows icon"),
        (float_tiff(1500), "scan.tiff", "image: not an image: TIFF image (not supported: send JPEG, PNG or WebP)"),
        (tiled_tiff(16, 4096), "tiles.tiff", "image: not an image: TIFF image"),
    ]
    for data, name, says in cases:
        response = await api.search_photo(data, filename=name)
        assert response.status_code == 422, (name, response.text)
        body = response.json()
        assert body["field"] == "image" and body["kind"] == "validation" and says in body["error"], (name, body)
    good = await api.search_photo(encode(Image.new("RGB", (2000, 1500), (250, 220, 40)), "PNG"), filename="big.png")
    assert good.status_code == 200, good.text  # a big PNG is still a photo


async def test_upload_claiming_50000_square_gets_422_naming_it_and_writes_nothing(api: Api) -> None:
    product = {"id": "bomb-upload", "title": "Bomb upload"}
    fine = encode(Image.new("RGB", (64, 64), (0, 200, 0)), "PNG")
    for files, field in [
        ([("images", ("big.png", png_header(50000, 50000), "image/png"))], "images[0]"),
        (
            [
                ("images", ("ok.png", fine, "image/png")),
                ("images", ("icon.ico", encode(Image.new("RGB", (32, 32)), "ICO"), "image/x-icon")),
            ],
            "images[1]",
        ),
    ]:
        response = await api.http.post(
            "/api/v1/products", headers=WRITE, data={"product": json.dumps(product)}, files=files
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["field"] == field and body["kind"] == "validation", body
        assert body["error"].startswith(f"{field}: the file (") and "is not an image that can be used" in body["error"]
        assert ("too large: over 179.0 megapixels" if field == "images[0]" else "Windows icon") in body["error"]
        assert (await api.product("bomb-upload")).status_code == 404  # nothing was written


async def test_text_search_is_answered_while_photos_are_decoded(api_catalog: Settings, offline_encoder) -> None:
    settings = api_catalog.model_copy(update={"max_concurrent_decodes": 1})
    costly = encode(Image.new("RGBA", (4000, 4000), (10, 200, 30, 128)), "PNG", compress_level=1)  # 16 Mpx, 0.3 MB
    async with run_api(settings, offline_encoder) as running:
        await running.http.post("/api/v1/search", json={"text": "banana"})  # the collection checked, words warm
        photos = [asyncio.create_task(running.search_photo(costly, filename="big.png")) for _ in range(4)]
        while running.service.decoding < 4:  # all four are in (or waiting for) the one decode slot
            await asyncio.sleep(0.01)
        text = await running.http.post("/api/v1/search", json={"text": "banana"})
        still_decoding = sum(not p.done() for p in photos)
        assert text.status_code == 200 and text.json()["cards"], text.text
        assert still_decoding >= 3  # before: the text waited behind every decode on the encoder thread
        assert [r.status_code for r in await asyncio.gather(*photos)] == [200] * 4
