"""The front door: what `lit-nst` alone says, `lit-nst fit --help` led by lit-nst's own flags, and jsonargparse's
messages in the flags' names a user types."""

import re
import shutil
import textwrap
from typing import Any

FIRST_COMMAND = "lit-nst fit --data.content photo.jpg --data.style painting.jpg \\\n      --output.path out.png"

USAGE = f"""usage: lit-nst fit --data.content PHOTO --data.style PAINTING [FLAGS]

Paints a photo in the style of a painting: the picture is optimised until a
VGG's features match the photo's and their Gram matrices the painting's.

To begin:
  {FIRST_COMMAND}

  lit-nst fit --help       the flags by what they do: images, style, speed,
                           output, clips, resume
  lit-nst fit --help-all   every flag, Lightning's Trainer's included
"""

# The flags a user reaches for, by what they do, in a line each (their defaults come from the parser);
# `--help-all` shows every flag with its full help.
SECTIONS = {
    "images": {
        "data.content": "the photo(s) to repaint; a video file or a folder of frames paints a clip",
        "data.style": "the painting(s); several make a job each, or one blend (--data.style_blend)",
        "data.size": "the result's longer side, in pixels",
        "data.style_scale": "the painting's size relative to the photo's: larger gives coarser strokes",
        "data.style_blend": "weights that blend several styles into one, e.g. [0.7,0.3]",
        "data.pairs": "several photos and paintings: every pair (product) or in order (zip)",
        "data.style_masks": "a mask per style, white where it paints (regions)",
        "data.content_mask": "white where the picture may change; black keeps the photo",
    },
    "style": {
        "model.style_weight": "how strongly the painting's style shows (gram: 50, w2: 7, gram+meanstd: 25, sliced: 80)",
        "model.style_loss": "gram, w2, gram+meanstd or sliced: what of the painting is matched",
        "model.content_weight": "how closely the photo's structure is kept",
        "model.tv_weight": "smoothness: weight of the total variation",
        "model.color": "none, luminance (keep the photo's colours) or match (the style in them)",
        "model.init": "the starting picture: content, noise or white",
        "model.pooling": "max (as VGG) or avg (smoother)",
        "model.arch": "vgg19 or vgg16",
        "model.weights": "caffe (offline), imagenet (downloaded once) or a weights file",
    },
    "speed": {
        "config": "a YAML file of flags: configs/fast.yaml, gatys.yaml, print.yaml, ...",
        "trainer.max_steps": "optimisation steps; by default 500, or the sum of --data.steps",
        "data.scales": "coarse to fine: the sizes of the stages, e.g. [256,512]",
        "data.steps": "the steps at each of --data.scales, e.g. [300,100]",
        "optimizer": "JobwiseLBFGS (the default), LBFGS or Adam; --optimizer.lr its rate",
        "trainer.precision": "32-true, bf16-mixed or 16-mixed; by default bf16-mixed where fast",
        "trainer.accelerator": "cpu, gpu or auto",
        "trainer.devices": "devices (processes) sharing the jobs, or one picture's blocks",
        "model.tile_size": "evaluate in exact blocks of this many pixels: prints beyond memory; 0 never",
    },
    "output": {
        "output.path": "the result of one job (.png, .jpg; a video file for a clip)",
        "output.dir": "the folder for several results, named <content>__<style>.png",
        "output.panel": "also write photo | painting | result side by side",
        "output.every_n_steps": "also write a snapshot every N steps",
        "trainer.log_every_n_steps": "log the losses every N steps (the bar shows every step)",
        "output.fps": "a clip's frame rate; by default the source's",
    },
    "clips": {
        "data.frame_steps": "steps for each frame after the first",
        "data.chunks": "cut the clip into chunks painted side by side (one per process)",
        "data.overlap": "frames each chunk paints before its own, cross-faded",
        "model.temporal_weight": "how closely a frame follows the last one along the optical flow",
    },
    "resume": {
        "ckpt_path": "last: go on from this run's checkpoint; or a .ckpt file",
        "trainer.default_root_dir": "the folder for checkpoints/ and logs; by default the current one",
        "checkpoint.every_n_steps": "write the checkpoint every N steps (and at the end)",
        "checkpoint.keep": "also keep the K latest as step-N.ckpt (-1: all)",
    },
}


def short_help(parser: Any) -> str:
    """`lit-nst fit --help`: the flags of `SECTIONS`, a line each with its default, wrapped to the terminal."""
    defaults = parser.get_defaults()
    width = max(60, min(shutil.get_terminal_size().columns, 120))
    column = 28
    lines = [USAGE.split("\n\nTo begin")[0], ""]
    for section, flags in SECTIONS.items():
        lines.append(f"{section}:")
        for dest, text in flags.items():
            default = _default(defaults, dest)
            text += f" (default: {default})" if default is not None else ""
            flag = f"  --{dest}"
            wrapped = textwrap.wrap(text, width - column)
            first = f"{flag:<{column}}{wrapped[0]}" if len(flag) < column else f"{flag}\n{' ' * column}{wrapped[0]}"
            lines += [first, *(" " * column + rest for rest in wrapped[1:])]
        lines.append("")
    lines.append("Every flag, Lightning's Trainer's included: lit-nst fit --help-all")
    return "\n".join(lines) + "\n"


def _default(defaults: Any, dest: str) -> str | None:
    """A default worth showing: not unset, off or a class path's dictionary."""
    try:
        value = defaults[dest]
    except (KeyError, TypeError):
        return None
    if value is None or value is False or value in ("", -1) or value == [] or not isinstance(value, str | int | float):
        return None
    if value == 0 and not isinstance(value, float):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def plain_message(message: str) -> str:
    """jsonargparse's error in a line that names flags as they are typed (`--data.size`, not `fit.data.size`)."""
    message = " ".join(message.split())
    message = re.sub(r"(?<![\w/.~-])fit\.([a-z_]+\.?[a-z_]*)\b", r"--\1", message)  # names, not values' paths
    literal = re.match(r'Parser key "([\w.]+)": Expected a typing\.Literal\[(.*)\]\. Got value: (.*)', message)
    if literal:
        key, choices, value = literal.groups()
        return f"--{key} is one of {choices.replace(chr(39), '')}, not {value}"
    typed = re.match(r"Parser key \"([\w.]+)\":.*?Expected a <class '(\w+)'>.*(?:Given|Got) value: (.*)", message)
    if typed:
        key, kind, value = typed.groups()
        kind = {"int": "a whole number", "float": "a number", "str": "a text", "bool": "true or false"}.get(kind, kind)
        return f"--{key} takes {kind}, not {value}"
    return message.replace("the following arguments are required", "these flags are required")
