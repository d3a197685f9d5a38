"""Clips in and out: video files with PyAV (FFmpeg's libraries, wheels for every platform), folders of frames
with Pillow. The audio of a source clip is copied into the result untouched (no re-encoding)."""

import itertools
import re
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
import torch
from PIL import Image
from torch import Tensor

from lit_nst.errors import UsageError
from lit_nst.files import atomic_file
from lit_nst.images import as_viewed, save_image, tensor_to_image

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif")
WRITABLE_SUFFIXES = (".mp4", ".mov", ".mkv", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = Fraction(24)  # a folder of frames says nothing about its rate
H264 = "libx264"  # the encoder of .mp4, .mov and .mkv results
Resize = Callable[[Image.Image], Image.Image]


def is_clip(path: str | Path) -> bool:
    """A video file, an animated GIF or a folder (of frames): what `--data.content` takes as a clip, not a photo."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        try:
            with Image.open(path) as opened:
                return getattr(opened, "n_frames", 1) > 1
        except (OSError, SyntaxError, ValueError):
            return False  # the image loader says what is wrong with it
    return path.suffix.lower() in VIDEO_SUFFIXES or path.is_dir()


def read_frames(path: str | Path, resize: Resize | None = None) -> tuple[list[Image.Image], Fraction | None, bool]:
    """(frames as 8-bit RGB, each passed through `resize` as it is read (None: as they are), frame rate (None for
    a folder), whether the file has audio)."""
    resize = resize or (lambda image: image)
    path = Path(path)
    if path.is_dir():
        # In the order a person numbering them meant: 2.png before 10.png.
        files = sorted((file for file in path.iterdir() if file.suffix.lower() in FRAME_SUFFIXES), key=_natural)
        frames = [resize(_frame_file(file)) for file in files]
        rate, audio = None, False
    elif not path.is_file():
        raise UsageError(f"content clip {path} does not exist")
    else:
        frames, rate, audio = _decode(path, resize)
    if len(frames) < 2:
        what = "no frames" if not frames else "one frame"
        raise UsageError(f"content clip {path} has {what}: a clip needs at least 2 (for one picture give an image)")
    if len({frame.size for frame in frames}) > 1:
        raise UsageError(f"the frames of {path} differ in size: give frames of one size")
    return frames, rate, audio


def _natural(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _frame_file(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            return as_viewed(opened)
    except (OSError, SyntaxError, ValueError) as error:
        raise UsageError(f"frame {path} is not an image Pillow can read ({error})") from None


def _decode(path: Path, resize: Resize) -> tuple[list[Image.Image], Fraction | None, bool]:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UsageError(f"content clip {path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames = [resize(as_viewed(frame.to_image())) for frame in container.decode(stream)]
            return frames, Fraction(rate) if rate else None, bool(container.streams.audio)
    except (av.error.FFmpegError, ValueError) as error:  # ValueError: a codec this FFmpeg has no decoder for
        raise UsageError(f"content clip {path} cannot be decoded ({' '.join(str(error).split())})") from None


def check_writable_clip(path: Path) -> None:
    """Before any work: a clip that could not be written would be found out only after the last frame."""
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise UsageError(
            f"cannot write a clip as {path.name}: use one of {', '.join(WRITABLE_SUFFIXES)}, "
            "or --output.dir for a folder of frames"
        )
    if path.suffix.lower() != ".gif":
        try:
            av.codec.Codec(H264, "w")
        except ValueError:  # a PyAV built against an FFmpeg without x264
            raise UsageError(
                f"cannot write {path.name}: this PyAV's FFmpeg has no H.264 encoder ({H264}); write a "
                ".gif, or --output.dir for a folder of frames"
            ) from None


# What each container takes as it is (FFmpeg's muxers); another codec would need re-encoding.
AUDIO_CODECS = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
}


def write_clip(frames: Iterable[Tensor], path: Path, rate: Fraction, audio_from: Path | None = None) -> str | None:
    """Frames (3, h, w) in [0, 1] as an H.264 video (or a GIF), with `audio_from`'s audio copied; atomically.
    Returns what could not be done (the audio left out), if anything."""
    frames = iter(frames)
    if path.suffix.lower() == ".gif":
        images = [tensor_to_image(frame) for frame in frames]
        with atomic_file(path) as stream:
            images[0].save(
                stream, format="GIF", save_all=True, append_images=images[1:], duration=10 * gif_delay(rate), loop=0
            )
        return None if audio_from is None else "a GIF has no sound: the clip's was left out"
    first = next(frames)
    note = None
    with atomic_file(path) as stream, av.open(stream, "w", format=_container_format(path)) as output:
        video = output.add_stream(H264, rate=rate)
        # 4:2:0 chroma needs even sides: the last row or column is repeated.
        height, width = first.shape[-2:]
        video.height, video.width = height + height % 2, width + width % 2
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "17"}  # visually lossless: the strokes are the point
        source = av.open(str(audio_from)) if audio_from is not None else None
        try:
            audio = source.streams.audio[0] if source is not None and source.streams.audio else None
            fits = AUDIO_CODECS.get(_container_format(path))
            if audio is not None and fits is not None and audio.codec_context.name not in fits:
                note = (
                    f"{path.suffix} cannot hold the clip's {audio.codec_context.name} sound as it is: written "
                    "without it (.mkv keeps it)"
                )
                audio = None
            copied = output.add_stream_from_template(audio) if audio is not None else None
            for frame in itertools.chain([first], frames):
                even = torch.nn.functional.pad(frame[None], (0, width % 2, 0, height % 2), mode="replicate")[0]
                for packet in video.encode(av.VideoFrame.from_image(tensor_to_image(even))):
                    output.mux(packet)
            for packet in video.encode():
                output.mux(packet)
            if copied is not None:
                for packet in source.demux(audio):
                    if packet.dts is not None:  # the demuxer's final empty packet
                        packet.stream = copied
                        output.mux(packet)
        finally:
            if source is not None:
                source.close()
    return note


def gif_delay(rate: Fraction) -> int:
    """A GIF frame's delay for `rate` frames a second: whole hundredths of a second, at least one."""
    return max(1, round(100 / rate))


def _container_format(path: Path) -> str:
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}[path.suffix.lower()]


def write_frame_folder(frames: list[Tensor], folder: Path) -> None:
    """Frames as `00000.png`, `00001.png`, ... in `folder`."""
    for index, frame in enumerate(frames):
        save_image(frame, folder / f"{index:05d}.png")
