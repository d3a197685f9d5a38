"""Bad input: one line on stderr naming the problem, non-zero exit, no traceback, no output file.

Each case runs the console script's `main` in this process (the same parsing, checks and exit status as the
installed `lit-nst`); one case also runs as a real process, where the exit status is the operating system's."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from lit_nst.usage import FIRST_COMMAND, SECTIONS

from .helpers import random_vgg_state, run_lit_nst, run_main


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    good = folder / "good.png"
    Image.effect_noise((64, 48), 40).convert("RGB").save(good)
    (folder / "empty.jpg").write_bytes(b"")
    full = folder / "full.jpg"
    Image.effect_noise((64, 64), 40).convert("RGB").save(full)
    (folder / "truncated.jpg").write_bytes(full.read_bytes()[:500])
    (folder / "notes.jpg").write_text("these are not pixels")
    (folder / "sub").mkdir()
    Image.effect_noise((64, 48), 40).convert("RGB").save(folder / "sub" / "good.png")
    wrong = random_vgg_state("vgg16")
    torch.save(wrong, folder / "vgg16.pth")
    return folder


CASES = {
    "missing content": (["--data.content", "{d}/missing.jpg"], "does not exist"),
    "empty style": (["--data.style", "{d}/empty.jpg"], "is empty"),
    "truncated content": (["--data.content", "{d}/truncated.jpg"], "truncated or corrupt"),
    "not an image": (["--data.style", "{d}/notes.jpg"], "not an image file"),
    "too small after resizing": (
        ["--data.size", "12"],
        "9 px at 12 px; both sides must be at least 16 px, which takes 22 px or more: raise --data.size",
    ),
    "painting too small at its scale": (["--data.style_scale", "0.1"], "raise --data.size or --data.style_scale"),
    "a schedule's size too small": (["--data.scales", "[8,32]", "--data.steps", "[1,1]"], "raise --data.scales"),
    "one scale": (["--data.scales", "[8]", "--data.steps", "[1]", "--data.size", "8"], "raise --data.scales"),
    "a stretched schedule's size too small": (
        ["--data.scales", "[32,64]", "--data.steps", "[1,1]", "--data.size", "24"],
        "at 12 px; both sides must be at least 16 px, which takes 22 px or more: raise --data.size (the schedule "
        "stretched to it starts at 12 of its 24 px)",
    ),
    "zero size": (["--data.size", "0"], "positive number of pixels"),
    "negative size": (["--data.size", "-5"], "positive number of pixels"),
    "unknown layer": (["--model.style_layers", "[relu1_1,relu6_1]"], "unknown layer 'relu6_1'"),
    "missing weights file": (["--model.weights", "{d}/none.pth"], "does not exist"),
    "weights of the wrong arch": (["--model.weights", "{d}/vgg16.pth"], "has no tensor 'features.16.weight'"),
    "not a number": (["--data.size", "big"], "--data.size takes a whole number, not big (see lit-nst fit --help)"),
    "not a choice": (["--model.color", "lum"], "--model.color is one of none, luminance, match, not lum"),
    "an unknown style loss": (
        ["--model.style_loss", "cramer"],
        "--model.style_loss is one of gram, w2, gram+meanstd, sliced, not cramer",
    ),
    "a negative style weight": (["--model.style_weight", "-50"], "--model.style_weight must be 0 or positive, got -50"),
    "sliced in blocks": (["--model.style_loss", "sliced", "--model.tile_size", "16"], "cannot be evaluated in blocks"),
    "no style": (["--data.style", "DROP"], "these flags are required: --data.style (see lit-nst fit --help)"),
    "a subcommand that means nothing here": (["SUBCOMMAND", "validate"], "invalid choice: 'validate' (choose from"),
    "output in a file's place": (["--output.path", "{d}/good.png/out.png"], "good.png is a file"),
    "mask of other proportions": (["--data.content_mask", "{d}/full.jpg"], "the content's proportions are 32x24"),
    "a mask too many": (["--data.style_masks", "[{d}/good.png,null]"], "2 masks for 1 styles"),
    "bf16-true": (["--trainer.precision", "bf16-true"], "would hold the image itself in 16 bits"),
    "16-true": (["--trainer.precision", "16-true"], "would hold the image itself in 16 bits"),
    "16-mixed with L-BFGS": (["--trainer.precision", "16-mixed"], "cannot drive L-BFGS"),
    "zip with a blend": (
        ["--data.style", "[{d}/good.png,{d}/full.jpg]", "--data.style_blend", "[1,1]", "--data.pairs", "zip"],
        "--data.pairs zip does not apply",
    ),
    "two contents of one name": (
        ["--data.content", "[{d}/good.png,{d}/sub/good.png]", "--output.dir", "{t}/out"],
        "two jobs would both write good__good.png",
    ),
    "tile size not a number": (["--model.tile_size", "big"], "--model.tile_size big is not a block size: use auto"),
    "a video file name for a picture": (  # refused in a callback's setup, after Lightning made its log folder
        ["--output.path", "{t}/out/o.mp4"],
        "is a video file, and the content a picture",
    ),
    "output folder not writable": (
        ["--data.content", "[{d}/good.png,{d}/full.jpg]", "--output.dir", "/proc/nope"],
        "cannot write into /proc/nope",
    ),
}


def bad_run(bad_inputs, tmp_path, case) -> tuple[list[str], Path, str]:
    """The command line of a case, where its output would go, and the message its error must hold."""
    overrides, message = CASES[case]
    output = tmp_path / "out" / "out.png"
    args = {"--data.content": f"{bad_inputs}/good.png", "--data.style": f"{bad_inputs}/good.png", "--data.size": "32"}
    args["--output.path"] = str(output)
    subcommand = "fit"
    for key, value in zip(overrides[::2], overrides[1::2], strict=True):
        args[key] = value.format(d=bad_inputs, t=tmp_path)
    if "--output.dir" in args:
        del args["--output.path"]
    if args.get("--data.style") == "DROP":
        del args["--data.style"]
    subcommand = args.pop("SUBCOMMAND", "fit")
    flat = [item for pair in args.items() for item in pair]
    return [subcommand, "--trainer.default_root_dir", str(tmp_path / "logs"), *flat], output, message


def assert_refused(result, output: Path, message: str, tmp_path: Path) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr  # the README's promise for bad input
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lit-nst: error: ") and message in lines[0], lines[0]
    assert not output.exists()
    assert not list(tmp_path.iterdir()), "a refused run leaves nothing behind, not even an empty folder"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_no_output(bad_inputs, tmp_path, capfd, case):
    args, output, message = bad_run(bad_inputs, tmp_path, case)
    assert_refused(run_main(capfd, *args), output, message, tmp_path)


def test_a_refusal_in_a_callbacks_checks_is_one_line_on_a_cpu_with_native_bfloat16(
    bad_inputs, tmp_path, capfd, monkeypatch, native_bf16_cpu
):
    """There Lightning announces bf16-mixed as the Trainer is made, before the callbacks' checks refuse the run."""
    monkeypatch.setenv("LIT_NST_CPUINFO", str(native_bf16_cpu))
    args, output, message = bad_run(bad_inputs, tmp_path, "a video file name for a picture")
    assert_refused(run_main(capfd, *args), output, message, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing content", "a video file name for a picture"])
def test_the_installed_command_exits_2_with_one_line(bad_inputs, tmp_path, case):
    """The console script as a process: refused at parsing, and in a callback's checks once the Trainer exists."""
    args, output, message = bad_run(bad_inputs, tmp_path, case)
    assert_refused(run_lit_nst(*args, timeout=120), output, message, tmp_path)


@pytest.mark.parametrize("args", [[], ["fit"], ["--help"]])
def test_the_command_alone_shows_a_short_usage_with_the_first_command_to_try(capfd, args):
    result = run_main(capfd, *args)
    shown = result.stdout if args == ["--help"] else result.stderr
    assert shown.startswith("usage: lit-nst fit --data.content PHOTO --data.style PAINTING") and FIRST_COMMAND in shown
    assert max(map(len, shown.splitlines())) <= 80
    assert result.returncode == (0 if args == ["--help"] else 2)
    if args == ["fit"]:
        assert result.stderr.splitlines()[-1] == (
            "lit-nst: error: give a photo and a painting: --data.content and --data.style"
        )


def test_help_leads_with_lit_nsts_flags_in_two_screens_and_help_all_has_every_trainer_flag(capfd, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    short = run_main(capfd, "fit", "--help")
    assert short.returncode == 0 and len(short.stdout.splitlines()) <= 100
    sections = [line for line in short.stdout.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert sections == [f"{section}:" for section in SECTIONS]
    assert "--model.content_weight    how closely the photo's structure is kept (default: 1)" in short.stdout
    assert "--model.style_loss        gram, w2, gram+meanstd or sliced" in short.stdout
    assert "--trainer.max_epochs" not in short.stdout
    everything = run_main(capfd, "fit", "--help-all")
    assert everything.returncode == 0 and "--trainer.max_epochs" in everything.stdout
    for flags in SECTIONS.values():  # each flag of the short help is one the command takes
        for flag in flags:
            assert f"--{flag} " in everything.stdout, flag
