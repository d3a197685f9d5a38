"""`lit_nst.stylize`: the `lit-nst fit` command as a Python call, for notebooks and scripts.

The same LightningCLI, module, data module, callbacks and Trainer run underneath; settings are the CLI's
flags as keywords (`size=256`, `style_weight=1e3`, `max_steps=100`, or dotted: `**{"output.every_n_steps": 10}`).
"""

import inspect
import json
import logging
import os
import random
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy
import torch
from jsonargparse import ArgumentError
from PIL import Image
from torch import Tensor

from lit_nst.callbacks.checkpoints import RunCheckpoint
from lit_nst.callbacks.clip_output import ClipWriter
from lit_nst.callbacks.output import ImageOutput
from lit_nst.cli import StyleTransferCLI, argument_error_message, cli_main, quiet_lightning_advertising
from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.images import as_viewed, save_image, tensor_to_image
from lit_nst.module import StyleTransfer
from lit_nst.optim import JobwiseLBFGS
from lit_nst.video.clips import assembled

ImageInput = str | Path | Image.Image | Tensor

# Keyword -> flag group, from the signatures the CLI itself is built from.
GROUPS = {
    "model": StyleTransfer.__init__,
    "data": StyleImages.__init__,
    "output": ImageOutput.__init__,
    "checkpoint": RunCheckpoint.__init__,
    "trainer": L.Trainer.__init__,
    "optimizer": JobwiseLBFGS.__init__,
}
TOP_LEVEL = ("config", "seed_everything", "ckpt_path", "optimizer")


def stylize(
    content: ImageInput | Sequence[ImageInput], style: ImageInput | Sequence[ImageInput], **settings: Any
) -> Image.Image | list[Image.Image]:
    """Paint `content` in the style of `style`; returns the result as a PIL image (a list if either is a list).

    Args:
        content: the photo(s): paths, PIL images, or (3, H, W) tensors in [0, 1]; or the path of a clip (a video
            file or a folder of frames), which gives the list of its painted frames.
        style: the painting(s), likewise; several make several jobs, or one blend with `style_blend`.
        settings: `lit-nst fit` flags without their group (`size`, `max_steps`, `color`, `precision`, ...),
            or with it where a name is in two groups (`output.every_n_steps`); `config` for a YAML file.
            Without `default_root_dir` nothing is kept on disk: no checkpoint, no logs.

    Raises:
        UsageError: bad input, with the message `lit-nst fit` would print.
    """
    as_list = not _is_single(content) or not _is_single(style)
    with tempfile.TemporaryDirectory(prefix="lit-nst-") as folder:
        args = ["fit", *_image_flags("content", content, Path(folder)), *_image_flags("style", style, Path(folder))]
        kept = "default_root_dir" in settings or "trainer.default_root_dir" in settings
        defaults = {"trainer.default_root_dir": folder, "trainer.logger": False, "trainer.enable_checkpointing": False}
        for key, value in {**(defaults if not kept else {}), **settings}.items():
            args += [f"--{_flag(key)}", _flag_value(value)]
        if "ckpt_path" in settings and not kept:
            raise UsageError("ckpt_path needs the folder the checkpoint was kept in: pass default_root_dir too")
        with _quiet_lightning(), _random_state_kept():
            try:
                cli = cli_main(args, cli_class=NotebookCLI)
            except ArgumentError as error:
                raise UsageError(argument_error_message(error)) from None
        clip = cli.datamodule.clip
        if clip is not None:  # its frames, painted (and the video written where `output.path` says)
            return [tensor_to_image(frame) for frame in assembled(clip.plan, ClipWriter.frames_folder(cli.trainer))]
        images = [tensor_to_image(image) for image in cli.model.result()]
    return images if as_list else images[0]


class NotebookCLI(StyleTransferCLI):
    """The command without its console reports: a notebook shows the progress bar and the returned picture."""

    console_reports = False

    def before_fit(self) -> None:
        super().before_fit()
        data, max_steps = self.datamodule, self.trainer.fit_loop.epoch_loop.max_steps
        if data.clip is not None and max_steps < data.schedule.total:  # refused before a step: nothing would be kept
            raise UsageError(
                f"max_steps {max_steps} stops the clip before its last frame (it takes {data.schedule.total} "
                "steps): drop max_steps, or lower frame_steps"
            )


def _is_single(images: ImageInput | Sequence[ImageInput]) -> bool:
    return isinstance(images, str | Path | Image.Image) or (isinstance(images, Tensor) and images.dim() == 3)


def _image_flags(role: str, images: ImageInput | Sequence[ImageInput], folder: Path) -> list[str]:
    """`--data.<role>` with a path per image; images in memory are written losslessly into `folder` first."""
    items = [images] if _is_single(images) else list(images)
    paths = []
    for index, item in enumerate(items):
        if isinstance(item, str | Path):
            paths.append(str(item))
            continue
        if isinstance(item, Tensor) and (item.dim() != 3 or item.shape[0] != 3):
            raise UsageError(f"{role} tensor has shape {tuple(item.shape)}: give (3, H, W) RGB in [0, 1]")
        if not isinstance(item, Tensor | Image.Image):
            raise UsageError(f"{role} is a {type(item).__name__}: give a path, a PIL image or a (3, H, W) tensor")
        path = folder / f"{role}{index}.png"
        # As the loader would show the same picture read from a file: 16-bit levels, transparency over white.
        save_image(item if isinstance(item, Tensor) else as_viewed(item), path)
        paths.append(str(path))
    return [f"--data.{role}", paths[0] if _is_single(images) else json.dumps(paths)]


def _flag(key: str) -> str:
    """`size` -> `data.size`; dotted keys as they are; an unknown or ambiguous name is a UsageError."""
    if "." in key or key in TOP_LEVEL:
        return key
    groups = [group for group, init in GROUPS.items() if key in _parameters(init)]
    if len(groups) == 1:
        return f"{groups[0]}.{key}"
    if groups:
        raise UsageError(f"setting {key!r} is in several groups: say which, e.g. **{{'{groups[0]}.{key}': ...}}")
    raise UsageError(f"unknown setting {key!r}: see lit-nst fit --help for the settings (without --group.)")


def _parameters(init: Any) -> set[str]:
    return set(inspect.signature(init).parameters) - {"self", "params", "args", "kwargs"}


def _flag_value(value: Any) -> str:
    """What the command line would say: plain strings and numbers as they are, the rest as YAML (JSON)."""
    if isinstance(value, str | Path):
        return str(value)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, default=str)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's banners (devices found, seeds, tips) and warnings are for logs, not for a notebook cell."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            quiet_lightning_advertising()
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _random_state_kept() -> Iterator[None]:
    """The run seeds every generator (`seed_everything`); a notebook's own random streams go on as before."""
    states = random.getstate(), numpy.random.get_state(), torch.get_rng_state(), os.environ.get("PL_GLOBAL_SEED")
    try:
        yield
    finally:
        random.setstate(states[0])
        numpy.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is None:
            os.environ.pop("PL_GLOBAL_SEED", None)
        else:
            os.environ["PL_GLOBAL_SEED"] = states[3]
