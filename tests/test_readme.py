"""Every `lit-nst` command in the README runs as written, at a tiny size (a new user's first try)."""

import math
import shlex
from pathlib import Path

import pytest
import yaml

from lit_nst.video import is_clip

from .helpers import REPO, config_scales, run_lit_nst, run_main, stretched_size


def readme_commands() -> list[str]:
    """The `.venv/bin/lit-nst ...` commands of the README's bash blocks, continuation lines joined."""
    commands, in_bash, pending = [], False, ""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash:
            continue
        code = line.split("  #", 1)[0].rstrip()  # the README's comments follow two or more spaces
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        text, pending = (pending + code).strip(), ""
        if text.startswith(".venv/bin/lit-nst "):
            commands.append(text)
    return commands


COMMANDS = readme_commands()
TINY = ["--trainer.max_steps", "2", "--trainer.enable_progress_bar", "false"]
CLIP_TINY = [
    "--data.scales",
    "[32]",
    "--data.steps",
    "[2]",
    "--data.frame_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
]


def tiny_size(args: list[str], cwd: Path) -> list[str]:
    """32 px, or larger where a small style scale would shrink the painting under 16 px; a schedule (a config's or
    the command's) stretched to start there."""
    scale = float(args[args.index("--data.style_scale") + 1]) if "--data.style_scale" in args else 1.0
    size = max(32, math.ceil(32 / scale))
    scales = yaml.safe_load(args[args.index("--data.scales") + 1]) if "--data.scales" in args else None
    if scales is None and "--config" in args:
        scales = config_scales(cwd / args[args.index("--config") + 1])
    return ["--data.size", str(stretched_size(size, scales))]


def test_the_readme_has_commands_to_try():
    assert len(COMMANDS) >= 4


def marked(command: str):
    """A command that starts several processes runs as the user's would; the others in this process."""
    return pytest.param(command, marks=pytest.mark.slow) if "--trainer.devices" in command else command


@pytest.mark.parametrize("command", [marked(c) for c in COMMANDS], ids=[f"readme-{i}" for i in range(len(COMMANDS))])
def test_readme_command_runs_as_written(tmp_path, capfd, monkeypatch, command):
    args = shlex.split(command)[1:]
    several_processes = "--trainer.devices" in args
    if several_processes:
        args += ["--trainer.accelerator", "cpu"]  # CI has no GPU; the same processes run on the CPU
    # Relative paths (assets/, configs/) as a user in the checkout would have them.
    for link in ("assets", "configs"):
        (tmp_path / link).symlink_to(REPO / link)
    # A clip is written once its last frame is painted: a few steps for every frame, not 2 in all.
    tiny = CLIP_TINY if is_clip(REPO / args[args.index("--data.content") + 1]) else TINY
    args += [*tiny_size(args, tmp_path), *tiny]
    if several_processes:
        result = run_lit_nst(*args, cwd=tmp_path, timeout=300)
    else:
        monkeypatch.chdir(tmp_path)
        result = run_main(capfd, *args)
    assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    assert named_outputs(args, tmp_path), f"{command}: no image where it says"
    for image in named_outputs(args, tmp_path):
        assert image.is_file(), f"{command}: {image} was not written"


def named_outputs(args: list[str], root: Path) -> list[Path]:
    """The images the command says it writes: its --output.path, or a file per job in its --output.dir."""
    if "--output.path" in args:
        return [root / args[args.index("--output.path") + 1]]
    folder = root / args[args.index("--output.dir") + 1]
    contents, styles = (listed(args[args.index(flag) + 1]) for flag in ("--data.content", "--data.style"))
    return [folder / f"{Path(c).stem}__{Path(s).stem}.png" for c in contents for s in styles]


def listed(value: str) -> list[str]:
    return value.strip("[]").split(",")
