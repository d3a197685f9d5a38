"""A clip with known motion made from a photo: the clip the video benchmark and the tests paint."""

from pathlib import Path

from PIL import Image

from lit_nst.errors import UsageError
from lit_nst.images import as_viewed

CAMERA_WINDOW = 0.7  # the share of the photo's width a camera move's first frame shows, so it has room to move


def camera_move(photo: str | Path, folder: Path, frames: int, size: int, pan: float = 2.0, zoom: float = 1.0) -> Path:
    """A clip with known motion, made from a photo: a camera panning right by `pan` px of the output a frame and
    zooming in by `zoom` a frame (1: none), written to `folder` as frames `000.png`, ... at `size` px wide (3:2)."""
    with Image.open(photo) as opened:
        image = as_viewed(opened)
    width, height = size, round(size * 2 / 3)
    window = image.width * CAMERA_WINDOW / width  # photo px per output px
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        scale = window / zoom**index
        centre_x, centre_y = image.width * CAMERA_WINDOW / 2 + pan * window * index, image.height / 2
        half_width, half_height = width * scale / 2, height * scale / 2
        if centre_x + half_width > image.width or half_height * 2 > image.height:
            raise UsageError(f"the camera leaves {photo} at frame {index}: fewer frames, or a slower pan")
        box = (centre_x - half_width, centre_y - half_height, centre_x + half_width, centre_y + half_height)
        image.resize((width, height), Image.Resampling.BICUBIC, box=box).save(folder / f"{index:03d}.png")
    return folder
