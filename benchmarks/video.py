"""Flicker of a painted clip, with and without the temporal terms, and what a clip costs.

    python benchmarks/video.py [--clip assets/chelsea_pan.mp4] [--size 128] [--runs 0:20 1e9:20] [--gif out.gif]
    python benchmarks/video.py --frames 64 --size 256 --runs 1e9:20 --no-independent   # the time of a long clip

Without `--clip` the clip is a camera move (pan and zoom) over the bundled chelsea photo, made by
benchmarks/camera.py. "independent" paints every frame on its own (each frame a job of its own, from its
photo, as a still, `--first-steps` steps); "temporal w, n" is `lit-nst fit` on the clip with
`--model.temporal_weight w` and `--data.frame_steps n`: each frame after the first starts from the previous
result warped along the flow (weight 0 keeps that warm start and drops the term). Flicker is the warping
error of Lai et al. (2018) with the input's flow and reliability mask; style and content are each frame's
losses (the objective's, at the output size), the worst frame's as a ratio to the independent frame's.
"painted once, moved with the camera" (the camera move, with the independent frames) paints the photo once and
films the painting with the same camera: its strokes move exactly with the scene, so its warping error is what
strokes that do not flicker at all cost under the metric's bilinear warp, a reference for a painted clip (a
blurrier clip can score lower). Sharpness is the mean absolute difference between neighbouring pixels, because a
clip can also flicker less by being blurrier. Every
run is a real `lit-nst fit` subprocess; `--write` puts the table into BENCHMARKS.md.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from bench import machine, write_section  # benchmarks/bench.py, beside this script
from camera import CAMERA_WINDOW, camera_move  # benchmarks/camera.py, beside this script

from lit_nst.images import image_to_tensor, labelled_panel, load_image, resize_longer_side
from lit_nst.module import StyleTransfer
from lit_nst.video.files import read_frames, write_clip
from lit_nst.video.flow import frame_flows, warping_error

REPO = Path(__file__).resolve().parents[1]
PHOTO, STYLE = REPO / "assets" / "chelsea.jpg", REPO / "assets" / "starry_night.jpg"
LIT_NST = "import sys; from lit_nst.console import main; sys.argv[0] = 'lit-nst'; main()"


def lit_nst(*args: str) -> float:
    """Seconds of one `lit-nst fit` subprocess."""
    start = time.perf_counter()
    # The CLI through this interpreter rather than the `lit-nst` script: a GPU machine may run from a PYTHONPATH.
    command = [
        sys.executable,
        "-c",
        LIT_NST,
        "fit",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger",
        "false",
        "--trainer.limit_val_batches",
        "0",
        *args,
    ]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


HEADER = (
    "| run | warping error | worst frame's style loss / independent | worst content loss / independent "
    "| sharpness | seconds (whole command) | steps a frame |\n|---|---:|---:|---:|---:|---:|---:|"
)


def table_row(
    name: str,
    error: float,
    style_ratio: float | None,
    content_ratio: float | None,
    sharp: float,
    seconds: float | None,
    steps: int | None,
) -> str:
    ratios = ("" if ratio is None else f"{ratio:.2f}" for ratio in (style_ratio, content_ratio))
    cells = [
        f"{error:.2e}",
        *ratios,
        f"{sharp:.4f}",
        "" if seconds is None else f"{seconds:.0f}",
        "" if steps is None else str(steps),
    ]
    return f"| {name} | {' | '.join(cells)} |"


def sharpness(frames: list) -> float:
    """Mean absolute difference between neighbouring pixels: a clip can flicker less by being blurrier, and this
    says whether it did."""
    return sum(
        float((f[:, :, 1:] - f[:, :, :-1]).abs().mean() + (f[:, 1:] - f[:, :-1]).abs().mean()) / 2 for f in frames
    ) / len(frames)


def frames_of(folder: Path) -> list:
    return [image_to_tensor(load_image(path, "frame")) for path in sorted(folder.glob("*.png"))]


def losses(frames: list, inputs: list, objective) -> tuple[list[float], list[float]]:
    """Each frame's (style, content) loss against the painting and its input frame."""
    objective.set_targets(inputs, [image_to_tensor(load_image(STYLE, "style"))] * len(frames))
    terms = objective(list(frames))
    return terms.style.tolist(), terms.content.tolist()


def worst_ratio(values: list[float], reference: list[float]) -> float:
    return max(a / b for a, b in zip(values, reference, strict=True))


PAN, ZOOM = 1.0, 1.002  # the camera move's: px of the output a frame, and zoom a frame


def input_frames(args: argparse.Namespace, folder: Path) -> tuple[Path, Fraction]:
    """A folder of the clip's frames at the benchmark's size, and the clip's rate."""
    if args.clip is None:
        return camera_move(PHOTO, folder, args.frames, args.size, pan=PAN, zoom=ZOOM), 24
    images, rate, _ = read_frames(args.clip)
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        resize_longer_side(image, args.size, "frame").save(folder / f"{index:03d}.png")
    return folder, rate or Fraction(24)


def painted_once(args: argparse.Namespace, folder: Path, precision: list[str]) -> tuple[float, list]:
    """The photo painted once, at the frames' scale, then filmed by the same camera move: a clip whose strokes move
    exactly with the scene: no flicker at all, and what the metric's bilinear warp charges such strokes."""
    source = round(args.size / CAMERA_WINDOW)
    seconds = lit_nst(
        "--data.content",
        str(PHOTO),
        "--data.style",
        str(STYLE),
        "--data.size",
        str(source),
        "--data.style_scale",
        f"{args.size / source:.6f}",
        "--trainer.max_steps",
        str(args.first_steps),
        "--trainer.default_root_dir",
        str(folder),
        "--output.path",
        str(folder / "painted.png"),
        *precision,
    )
    moved = camera_move(folder / "painted.png", folder / "moved", args.frames, args.size, pan=PAN, zoom=ZOOM)
    return seconds, frames_of(moved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="a clip to paint instead of the camera move")
    parser.add_argument("--frames", type=int, default=24, help="frames of the camera move")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--first-steps", type=int, default=200, help="a cold start's steps (every independent frame)")
    parser.add_argument("--runs", nargs="+", default=["0:20", "1e9:20"], help="temporal weight:steps a frame")
    parser.add_argument("--no-independent", action="store_true", help="skip the frames painted on their own")
    parser.add_argument("--gif", type=Path, help="write input | independent | the last run, side by side")
    parser.add_argument("--precision", help="--trainer.precision of every run (default: the machine's)")
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        clip, rate = input_frames(args, work / "clip")
        inputs = frames_of(clip)
        start = time.perf_counter()
        flows = frame_flows(inputs)
        flow_seconds = time.perf_counter() - start
        objective = StyleTransfer().objective.requires_grad_(False)
        precision = ["--trainer.precision", args.precision] if args.precision else []
        common = ["--data.style", str(STYLE), "--data.size", str(args.size), *precision]
        rows, reference, independent = [], None, None

        def measure(name: str, frames: list, seconds: float | None = None, steps: int | None = None) -> None:
            ratios = [None, None]
            if reference is not None and name != "input clip":
                now = losses(frames, inputs, objective)
                ratios = [worst_ratio(a, b) for a, b in zip(now, reference, strict=True)]
            rows.append((name, warping_error(frames, inputs, flows), *ratios, sharpness(frames), seconds, steps))
            print(table_row(*rows[-1]), flush=True)  # a long benchmark cut short still shows what it measured

        print(f"optical flow {flow_seconds:.1f} s\n{HEADER}", flush=True)
        measure("input clip", inputs)
        if not args.no_independent:
            paths = [str(path) for path in sorted(clip.glob("*.png"))]
            seconds = lit_nst(
                "--data.content",
                f"[{','.join(paths)}]",
                *common,
                "--trainer.max_steps",
                str(args.first_steps),
                "--trainer.default_root_dir",
                str(work / "independent"),
                "--output.dir",
                str(work / "independent" / "out"),
            )
            independent = frames_of(work / "independent" / "out")
            reference = losses(independent, inputs, objective)
            measure("independent", independent, seconds, args.first_steps)
        if args.clip is None and not args.no_independent:
            seconds, moved = painted_once(args, work / "painted-once", precision)
            measure("painted once, moved with the camera", moved, seconds)
        for run in args.runs:
            weight, frame_steps = float(run.split(":")[0]), int(run.split(":")[1])
            folder = work / f"temporal-{run}"
            seconds = lit_nst(
                "--data.content",
                str(clip),
                *common,
                "--data.steps",
                f"[{args.first_steps}]",
                "--data.scales",
                f"[{args.size}]",
                "--data.frame_steps",
                str(frame_steps),
                "--model.temporal_weight",
                str(weight),
                "--trainer.default_root_dir",
                str(folder),
                "--output.dir",
                str(folder / "out"),
            )
            painted = frames_of(folder / "out")
            measure(f"temporal {weight:g}, {frame_steps} steps a frame", painted, seconds, frame_steps)
        if args.gif is not None and independent is not None:
            height = inputs[0].shape[-2]
            panels = [
                image_to_tensor(labelled_panel([("photo", a), ("frames alone", b), ("lit-nst", c)], height))
                for a, b, c in zip(inputs, independent, painted, strict=True)
            ]
            write_clip(panels, args.gif, Fraction(rate))
    lines = [
        f"{len(inputs)} frames at {args.size} px ({args.clip or 'a pan and zoom over chelsea'}), starry_night, "
        f"{machine()}. Optical flow (DIS, both directions, every pair): {flow_seconds:.1f} s in all.",
        "",
        HEADER,
        *(table_row(*row) for row in rows),
    ]
    print("\n".join(lines))
    if args.write:
        title = "Video" if not args.no_independent else "Video: the time of a long clip"
        write_section(REPO / "BENCHMARKS.md", title, "\n".join(lines))


if __name__ == "__main__":
    main()
