"""Image files in and out with Pillow: loading as the objective expects, atomic writes."""

import contextlib
import math
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from lit_nst.errors import UsageError
from lit_nst.files import atomic_file

MIN_SIDE = 16  # below this the deepest VGG layers have no spatial extent left


def load_image(path: str | Path, role: str) -> Image.Image:
    """Read an image file as a viewer shows it, in 8-bit RGB: EXIF orientation applied, 16-bit grey scaled,
    alpha composited over white, palette, CMYK and the rest converted by Pillow."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{role} image {path} does not exist")
    if path.stat().st_size == 0:
        raise UsageError(f"{role} image {path} is empty")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError:
        raise UsageError(f"{role} image {path} is not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UsageError(f"{role} image {path} is truncated or corrupt ({error})") from None
    return as_viewed(image)


def as_viewed(image: Image.Image) -> Image.Image:
    """A picture in any mode as 8-bit RGB, as a viewer shows it."""
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grey (scanners, raw converters): Pillow's own conversion clips at 255, i.e. all but black is white.
        image = image.convert("I").point(lambda value: value / 257 + 0.5).convert("L")
    elif image.mode == "F":  # floating-point grey, taken as [0, 1]
        image = image.point(lambda value: value * 255 + 0.5).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def resize_longer_side(image: Image.Image, size: int, role: str, remedy: str = "raise the size") -> Image.Image:
    """Bicubic resize so the longer side is `size` px, the other side rounded. Too small for the network, an
    error names the picture (`role`, e.g. "content image photo.jpg"), the size that would do, and `remedy`."""
    width, height = image.size
    scale = size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(new_size) < MIN_SIDE:
        least = math.ceil(MIN_SIDE * max(width, height) / min(width, height))
        raise UsageError(
            f"{role} would be {new_size[0]}x{new_size[1]} px at {size} px; both sides must be at least {MIN_SIDE} px, "
            f"which takes {least} px or more: {remedy}"
        )
    return image.resize(new_size, Image.Resampling.BICUBIC)


def load_mask(path: str | Path, role: str, shape: tuple[int, int]) -> Tensor:
    """A mask file as (1, h, w) in [0, 1] (white 1), resized to the content's (h, w) shape."""
    height, width = shape
    image = load_image(path, role)
    # Proportions, not size: one mask serves every scale of a coarse-to-fine run.
    if abs(image.width / image.height - width / height) > 0.02 * width / height:
        raise UsageError(
            f"{role} {path} is {image.width}x{image.height} px but the content's proportions are {width}x{height}: "
            "draw the mask over the content photo, with its proportions"
        )
    mask = image_to_tensor(image.convert("L").resize((width, height), Image.Resampling.BILINEAR))
    if mask.max() == 0:
        raise UsageError(f"{role} {path} is black everywhere: paint the region white")
    return mask


def image_to_tensor(image: Image.Image) -> Tensor:
    """PIL RGB -> (3, H, W) float32 in [0, 1]."""
    return pil_to_tensor(image).to(torch.float32) / 255.0


def check_writable(path: Path, also: tuple[str, ...] = ()) -> None:
    """Fail now, not after the last step, if an image (or a file of the suffixes `also`) cannot be written at `path`."""
    if path.is_dir():
        raise UsageError(f"output {path} is a directory: give a file name such as {path / 'stylized.png'}")
    if path.suffix.lower() not in (*Image.registered_extensions(), *also):
        clips = f" (a clip: {', '.join(also)})" if also else ""
        raise UsageError(f"output {path} has no image extension Pillow knows: use .png or .jpg{clips}")
    blocking_file = next((parent for parent in path.parents if parent.is_file()), None)
    if blocking_file is not None:
        raise UsageError(f"cannot write {path}: {blocking_file} is a file, not a directory")
    _probe(path.parent, f".{path.name}.", f"cannot write {path}")


def check_writable_folder(folder: Path) -> None:
    """Fail now if results cannot be written into `folder` (a missing folder is made to try, then removed)."""
    blocking_file = next((parent for parent in (folder, *folder.parents) if parent.is_file()), None)
    if blocking_file is not None:
        raise UsageError(f"cannot write into {folder}: {blocking_file} is a file, not a directory")
    _probe(folder, ".lit-nst.", f"cannot write into {folder}")


def _probe(folder: Path, prefix: str, failure: str) -> None:
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]  # the deepest first
    try:
        for attempt in range(3):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=folder, prefix=prefix, suffix=".probe"):
                    break
            except FileNotFoundError as error:
                # Another DDP rank's probe removed the folder this one found made: make it again.
                if folder.exists() or attempt == 2:
                    raise UsageError(f"{failure}: {error.strerror or error}") from None
            except OSError as error:
                raise UsageError(f"{failure}: {error.strerror or error}") from None
    finally:
        # A run refused after this check leaves no empty folders behind; writing a file makes them again.
        for created in missing:
            with contextlib.suppress(OSError):
                created.rmdir()


def tensor_to_image(image: Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> PIL RGB, rounded to the nearest 8-bit value."""
    return to_pil_image(image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu())


def labelled_panel(pictures: list[tuple[str, Tensor]], height: int) -> Image.Image:
    """The pictures side by side at a common height, each with its label in a strip beneath."""
    font = ImageFont.load_default(size=max(12, height // 24))
    strip = font.size + 10
    scaled = []
    for label, tensor in pictures:
        picture = tensor_to_image(tensor)
        width = max(1, round(picture.width * height / picture.height))
        scaled.append((label, picture.resize((width, height), Image.Resampling.BICUBIC)))
    gap = 8
    canvas = Image.new("RGB", (sum(p.width for _, p in scaled) + gap * (len(scaled) - 1), height + strip), "white")
    draw = ImageDraw.Draw(canvas)
    left = 0
    for label, picture in scaled:
        canvas.paste(picture, (left, 0))
        draw.text((left + picture.width / 2, height + strip / 2), label, fill="black", font=font, anchor="mm")
        left += picture.width + gap
    return canvas


def save_image(image: Tensor | Image.Image, path: Path) -> None:
    """Write a (3, H, W) image in [0, 1] (or a PIL image) to `path` atomically: a temporary file, then a rename."""
    picture = image if isinstance(image, Image.Image) else tensor_to_image(image)
    image_format = Image.registered_extensions()[path.suffix.lower()]
    with atomic_file(path) as stream:
        picture.save(stream, format=image_format)
