"""Image and mask files: loading as the objective expects, resizing, atomic writes."""

import os
import stat
import struct
import zlib

import pytest
import torch
from PIL import Image

from lit_nst.errors import UsageError
from lit_nst.images import check_writable, image_to_tensor, load_image, resize_longer_side, save_image


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path, "content").size == (20, 40)


def test_alpha_is_composited_over_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    loaded = load_image(path, "style")
    assert loaded.mode == "RGB"
    assert loaded.getpixel((0, 0)) == (255, 255, 255)


def png_16bit_rgb(pixels: torch.Tensor, path) -> None:
    """A 48-bit RGB PNG written by hand ((H, W, 3) values in 0-65535): Pillow cannot write one."""
    height, width, _ = pixels.shape
    rows = pixels.to(torch.int32).numpy().astype(">u2")
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


GRADIENT = torch.linspace(0, 1, 64 * 64).reshape(64, 64)  # what a viewer shows, in [0, 1]


def test_16_bit_grey_loads_as_its_grey_levels_not_white(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray((GRADIENT * 65535).round().to(torch.int32).numpy().astype("uint16")).save(path)
    assert Image.open(path).mode == "I;16"
    loaded = image_to_tensor(load_image(path, "content"))
    assert loaded.shape == (3, 64, 64)
    assert (loaded - GRADIENT).abs().max() <= 0.5 / 255 + 1e-6  # rounded to the nearest 8-bit level


def test_16_bit_rgb_loads_as_its_colours(tmp_path):
    path = tmp_path / "raw.png"
    pixels = torch.stack([GRADIENT, GRADIENT.flip(0), torch.full_like(GRADIENT, 0.25)], dim=-1)
    png_16bit_rgb((pixels * 65535).round(), path)
    loaded = image_to_tensor(load_image(path, "content"))
    assert (loaded - pixels.permute(2, 0, 1)).abs().max() <= 1 / 255


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("L", 100, (100, 100, 100)),
        ("P", 3, None),  # palette index 3 of the default palette, whatever colour that is
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),  # no cyan: red
        ("LA", (0, 0), (255, 255, 255)),  # black, fully transparent, over white
        ("LA", (40, 255), (40, 40, 40)),
        ("RGBA", (200, 10, 10, 128), (227, 132, 132)),  # half-transparent red over white
    ],
)
def test_every_mode_loads_as_a_viewer_shows_it(tmp_path, mode, colour, expected):
    path = tmp_path / ("image.tiff" if mode == "CMYK" else "image.png")
    image = Image.new(mode, (5, 4), colour)
    image.save(path)
    loaded = load_image(path, "content")
    assert loaded.mode == "RGB" and loaded.size == (5, 4)
    shown = image.convert("RGB").getpixel((0, 0)) if expected is None else expected
    assert all(abs(a - b) <= 1 for a, b in zip(loaded.getpixel((2, 2)), shown, strict=True)), loaded.getpixel((2, 2))


def test_resize_makes_the_longer_side_the_size_and_rounds_the_other():
    resized = resize_longer_side(Image.new("RGB", (300, 200)), 128, "content")
    assert resized.size == (128, 85)  # 200 * 128 / 300 = 85.33
    assert resize_longer_side(Image.new("RGB", (200, 300)), 128, "content").size == (85, 128)


def test_image_smaller_than_16_px_after_resizing_is_a_usage_error():
    with pytest.raises(UsageError, match="at least 16 px"):
        resize_longer_side(Image.new("RGB", (400, 20)), 64, "content")


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"", "is empty"), (b"hello, not an image", "not an image file")],
)
def test_bad_files_are_usage_errors(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load_image(path, "content")


def test_truncated_file_is_a_usage_error(tmp_path):
    full = tmp_path / "full.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(full)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:600])
    with pytest.raises(UsageError, match="truncated or corrupt"):
        load_image(truncated, "style")


def test_save_then_load_round_trips_and_leaves_no_temporary(tmp_path):
    image = torch.rand(3, 17, 23)
    path = tmp_path / "out.png"
    save_image(image, path)
    assert torch.allclose(image_to_tensor(load_image(path, "result")), image, atol=0.5 / 255 + 1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_written_images_get_the_permissions_of_any_new_file(tmp_path):
    # The atomic write goes through mkstemp, whose files are private (0600) unless widened.
    previous = os.umask(0o022)
    try:
        save_image(torch.rand(3, 8, 8), tmp_path / "out.png")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o644


def test_unwritable_output_is_found_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(UsageError, match="cannot write"):
        check_writable(blocker / "out.png")
    with pytest.raises(UsageError, match="image extension"):
        check_writable(tmp_path / "out.txt")
    with pytest.raises(UsageError, match="is a directory"):
        check_writable(tmp_path)
