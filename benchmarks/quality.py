"""The style losses judged on measures that nothing optimised: SSIM to the photo, a held-out style distance, a colour
distance, and seconds per step; the style/content frontier as a picture, and a strip of one pair under each loss.

    python benchmarks/quality.py [--size 192] [--steps 60] [--losses gram w2 gram+meanstd sliced] [--write]
    python benchmarks/quality.py --cost [--size 512] [--steps 8] [--rounds 3] [--write]

Each loss runs at three style weights (its default ÷ 4, its default, its default × 4) on the bundled pairs, from the
photo, with L-BFGS, as `lit-nst fit` does by default (VGG19, caffe weights). The measures:
- SSIM to the photo (lit_nst.metrics): how much of the photo's structure is kept.
- Held-out style distance: the sliced Wasserstein distance between the result's and the painting's features on a
  network the optimisation did not use (VGG16 from ../shared/weights where present, else a fixed-seed random
  multi-scale CNN, which captures texture too), over 64 fixed directions a layer; each layer's distance relative to
  the painting's own spread, averaged over layers. Lower: closer to the painting.
- Colour distance: the sliced Wasserstein distance of the result's and the painting's RGB pixels, in 0-255 levels.
- Seconds per step: the fit loop's time over its steps, on this machine, at this size.
`--write` puts the table into BENCHMARKS.md ("Style losses") and writes docs/style_frontier.png and
docs/style_losses.jpg (the strip: photo, painting, then each loss at its default weight, on the first pair).
`--cost` times a step of each loss instead, interleaved round by round, the fastest round of each, against Gram's
(BENCHMARKS.md, "Style losses: cost per step").
"""

import argparse
import tempfile
from pathlib import Path

import torch
from bench import LOOP_SECONDS, machine, time_fit_loops, unwatched, write_section  # benchmarks/bench.py
from PIL import Image, ImageDraw
from torch import nn

from lit_nst.cli import cli_main
from lit_nst.images import image_to_tensor, load_image, resize_longer_side, tensor_to_image
from lit_nst.metrics import structural_similarity
from lit_nst.objective.backbone import VGGFeatures
from lit_nst.objective.preprocessing import Preprocess
from lit_nst.objective.statistics import DEFAULT_STYLE_WEIGHTS, STYLE_LOSSES, SlicedWasserstein
from lit_nst.objective.weights import weight_source

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
PAIRS = [("chelsea", "starry_night"), ("coffee", "the_scream"), ("astronaut", "woman-with-hat-matisse")]
VGG16 = REPO.parent / "shared" / "weights" / "vgg16-caffe-features.pth"
COLOURS = {"gram": (40, 40, 40), "w2": (200, 60, 40), "gram+meanstd": (40, 110, 200), "sliced": (40, 150, 70)}
DIRECTIONS = 64

time_fit_loops()  # the loop alone, not start-up


def asset(name: str) -> Path:
    return next(ASSETS.glob(f"{name}.*"))


def paint(
    content: str, style: str, loss: str, weight: float | None, size: int, steps: int
) -> tuple[torch.Tensor, float]:
    """The result of one run (at the loss's default weight where `weight` is None), and its seconds per step."""
    with tempfile.TemporaryDirectory() as folder:
        cli = cli_main(
            [
                "fit",
                *("--data.content", str(asset(content)), "--data.style", str(asset(style))),
                *("--data.size", str(size), "--trainer.max_steps", str(steps)),
                *("--model.style_loss", loss),
                *(("--model.style_weight", str(weight)) if weight is not None else ()),
                *unwatched(folder),
                *("--trainer.limit_val_batches", "0", "--trainer.enable_checkpointing", "false"),
            ]
        )
        return cli.model.result()[0], LOOP_SECONDS.pop() / steps


class HeldOut:
    """Features of a network the optimisation did not use: VGG16 (caffe) where its file is, else a random CNN."""

    def __init__(self) -> None:
        if VGG16.exists():
            self.name = "VGG16 (../shared), relu1_2 relu2_2 relu3_3 relu4_3"
            layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
            self.network = VGGFeatures("vgg16", weight_source(str(VGG16)).state_dict("vgg16"), layers)
            self.preprocess = Preprocess("caffe")
        else:
            self.name = "random multi-scale CNN (seed 0), 4 scales"
            self.network, self.preprocess = RandomCNN(), nn.Identity()
        self.network.eval()

    @torch.no_grad()
    def distance(self, result: torch.Tensor, painting: torch.Tensor) -> float:
        ours, theirs = self.network(self.preprocess(result[None])), self.network(self.preprocess(painting[None]))
        return sum(sliced_distance(ours[name], theirs[name], name) for name in ours) / len(ours)


class RandomCNN(nn.Module):
    """Four 3x3 convolutions with ReLU and 2x average pooling between them, fixed random weights (He init)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        widths = [3, 64, 128, 256, 256]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:], strict=False))
        for conv in self.convs:
            fan_in = conv.in_channels * 9
            conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
            conv.bias.data.zero_()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features, x = {}, image - 0.5
        for index, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            features[f"scale{index}"] = x
            x = nn.functional.avg_pool2d(x, 2)
        return features


def sliced_distance(ours: torch.Tensor, theirs: torch.Tensor, layer: str) -> float:
    """The sliced Wasserstein distance of two (1, C, h, w) feature maps relative to the second's spread."""
    sliced = SlicedWasserstein()
    directions = sliced.directions(ours.shape[1], layer, ours.device)[:, :DIRECTIONS]
    count = ours.shape[-2] * ours.shape[-1]
    quantiles = sliced.target([theirs], [1.0], directions, count)
    projected = sliced.projections(ours, directions, None).sort(dim=-1).values
    spread = sliced.projections(theirs, directions, None).std(dim=-1).square().mean()
    return ((projected - quantiles).square().mean() / spread).sqrt().item()


def colour_distance(result: torch.Tensor, painting: torch.Tensor) -> float:
    """The sliced Wasserstein distance of the two pictures' RGB pixels, in 0-255 levels."""
    sliced = SlicedWasserstein()
    directions = sliced.directions(3, "rgb", result.device)
    pixels, theirs = result[None] * 255, painting[None] * 255
    quantiles = sliced.target([theirs], [1.0], directions, pixels[0, 0].numel())
    projected = sliced.projections(pixels, directions, None).sort(dim=-1).values
    return (projected - quantiles).square().mean().sqrt().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--losses", nargs="+", default=list(STYLE_LOSSES), choices=STYLE_LOSSES)
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="how many of the bundled pairs")
    parser.add_argument("--cost", action="store_true", help="time a step of each loss instead")
    parser.add_argument("--rounds", type=int, default=3, help="with --cost: interleaved rounds")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.cost:
        return cost(args)
    held_out = HeldOut()
    rows, strip = [], {}
    for loss in args.losses:
        default = DEFAULT_STYLE_WEIGHTS[loss]
        for weight in (default / 4, default, default * 4):
            measured = []
            for content, style in PAIRS[: args.pairs]:
                result, seconds = paint(content, style, loss, weight, args.size, args.steps)
                photo = image_to_tensor(resize_longer_side(load_image(asset(content), "photo"), args.size, "photo"))
                painting = image_to_tensor(load_image(asset(style), "painting"))
                painting_at_size = image_to_tensor(
                    resize_longer_side(load_image(asset(style), "painting"), args.size, "painting")
                )
                measured.append(
                    (
                        structural_similarity(result[None], photo[None]),
                        held_out.distance(result, painting_at_size),
                        colour_distance(result, painting),
                        seconds,
                    )
                )
                if weight == default and (content, style) == PAIRS[0]:
                    strip[loss] = result
            ssim, style_distance, colour, seconds = (
                sum(column) / len(column) for column in zip(*measured, strict=True)
            )
            rows.append(
                {
                    "loss": loss,
                    "weight": weight,
                    "ssim": ssim,
                    "style": style_distance,
                    "colour": colour,
                    "seconds": seconds,
                }
            )
            print(
                f"| {loss} | {weight:g} | {ssim:.3f} | {style_distance:.3f} | {colour:.1f} | {seconds:.3f} |",
                flush=True,
            )
    table = report(rows, args, held_out.name)
    print(table)
    if args.write:
        write_section(REPO / "BENCHMARKS.md", "Style losses", table)
        frontier(rows, REPO / "docs" / "style_frontier.png")
        strip_picture(strip, REPO / "docs" / "style_losses.jpg")


def cost(args: argparse.Namespace) -> None:
    """Seconds per step of each loss at its default weight, rounds interleaved, the fastest of each."""
    content, style = PAIRS[0]
    seconds = {loss: [] for loss in args.losses}
    for _ in range(args.rounds):
        for loss in args.losses:
            _, step = paint(content, style, loss, None, args.size, args.steps)  # the fit loop's time over its steps
            seconds[loss].append(step)
            print(f"{loss}: {step:.3f} s/step", flush=True)
    gram = min(seconds["gram"]) if "gram" in seconds else None
    lines = [
        f"{content} × {style} at {args.size} px, {args.steps} steps a run, each loss at its default weight, "
        f"{args.rounds} rounds interleaved, the fastest of each; {machine()}.",
        "",
        "| loss | s/step | against gram |",
        "| --- | ---: | ---: |",
    ]
    for loss, times in seconds.items():
        ratio = f"{min(times) / gram:.2f}x" if gram else "-"
        lines.append(f"| {loss} | {min(times):.3f} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(REPO / "BENCHMARKS.md", "Style losses: cost per step", table)


def report(rows: list[dict], args: argparse.Namespace, held_out: str) -> str:
    pairs = ", ".join(f"{content} × {style}" for content, style in PAIRS[: args.pairs])
    lines = [
        f"{args.size} px, {args.steps} L-BFGS steps from the photo, each figure the mean over {args.pairs} pairs "
        f"({pairs}); held-out network: {held_out}; {machine()}.",
        "",
        "| loss | style weight | SSIM to photo | held-out style distance | colour distance | s/step |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['loss']} | {row['weight']:g} | {row['ssim']:.3f} | {row['style']:.3f} | {row['colour']:.1f} "
            f"| {row['seconds']:.3f} |"
        )
    return "\n".join(lines)


def frontier(rows: list[dict], path: Path) -> None:
    """SSIM to the photo (x) against the held-out style distance (y), one line per loss through its three weights."""
    width, height, margin = 900, 600, 70
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    xs, ys = [row["ssim"] for row in rows], [row["style"] for row in rows]
    x0, x1 = min(xs) - 0.02, max(xs) + 0.02
    y0, y1 = min(ys) * 0.95, max(ys) * 1.05

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            margin + (x - x0) / (x1 - x0) * (width - 2 * margin),
            height - margin - (y - y0) / (y1 - y0) * (height - 2 * margin),
        )

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for tick in range(6):
        x, y = x0 + (x1 - x0) * tick / 5, y0 + (y1 - y0) * tick / 5
        draw.text((at(x, y0)[0] - 12, height - margin + 8), f"{x:.2f}", fill="black")
        draw.text((8, at(x0, y)[1] - 6), f"{y:.3f}", fill="black")
    draw.text((width // 2 - 80, height - 30), "SSIM to the photo (higher: more photo kept)", fill="black")
    draw.text((margin, 20), "held-out style distance (lower: closer to the painting)", fill="black")
    for index, loss in enumerate(dict.fromkeys(row["loss"] for row in rows)):
        points = [at(row["ssim"], row["style"]) for row in rows if row["loss"] == loss]
        colour = COLOURS[loss]
        draw.line(points, fill=colour, width=3)
        for (x, y), row in zip(points, [row for row in rows if row["loss"] == loss], strict=True):
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
            draw.text((x + 7, y - 14), f"{row['weight']:g}", fill=colour)
        key = (width - margin - 140, margin + 18 + 18 * index)
        draw.line([key, (key[0] + 20, key[1])], fill=colour, width=3)
        draw.text((key[0] + 26, key[1] - 6), loss, fill=colour)
    picture.save(path)
    print(f"wrote {path}")


def strip_picture(results: dict[str, torch.Tensor], path: Path) -> None:
    """The photo, the painting, then each loss's result, side by side, as high as the results."""
    content, style = PAIRS[0]
    pictures = [load_image(asset(content), "photo"), load_image(asset(style), "painting")]
    pictures += [tensor_to_image(image) for image in results.values()]
    height = pictures[-1].height
    pictures = [picture.resize((round(picture.width * height / picture.height), height)) for picture in pictures]
    strip = Image.new("RGB", (sum(picture.width for picture in pictures) + 4 * (len(pictures) - 1), height), "white")
    left = 0
    for picture in pictures:
        strip.paste(picture, (left, 0))
        left += picture.width + 4
    strip.save(path, quality=92)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
