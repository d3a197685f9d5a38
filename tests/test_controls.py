"""Artist's controls, each measured by its effect (issue: coarse-to-fine, colour, several styles, regions)."""

import pytest
import torch
from PIL import Image
from torch.nn.functional import interpolate

from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.images import load_image
from lit_nst.objective.color import luminance_as_rgb, match_color, rgb_to_yiq, with_chroma
from lit_nst.objective.losses import mean_squared_error
from lit_nst.schedule import stretch

from .helpers import fit, painting, photo, run_checkpoint


def population_covariance(image: torch.Tensor) -> torch.Tensor:
    pixels = image.reshape(3, -1).double()
    centred = pixels - pixels.mean(1, keepdim=True)
    return centred @ centred.T / pixels.shape[1]


def test_match_color_gives_the_style_the_contents_mean_and_covariance():
    images = StyleImages(photo("chelsea"), painting("starry_night"), size=64)
    content, style = images.jobs[0].content, images.jobs[0].style
    matched = match_color(style, content)
    assert torch.allclose(matched.reshape(3, -1).mean(1), content.reshape(3, -1).mean(1), atol=1e-4)
    assert torch.allclose(population_covariance(matched), population_covariance(content), atol=1e-4)
    assert not torch.allclose(population_covariance(style), population_covariance(content), atol=1e-3)


def test_yiq_round_trip_and_luminance_keeps_chroma():
    image, other = torch.rand(3, 9, 7), torch.rand(3, 9, 7)
    grey = luminance_as_rgb(image)
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])
    mixed = with_chroma(grey, other)
    assert torch.allclose(rgb_to_yiq(mixed)[1:], rgb_to_yiq(other)[1:], atol=1e-5)
    assert torch.allclose(rgb_to_yiq(mixed)[:1], rgb_to_yiq(image)[:1], atol=1e-5)


def test_luminance_mode_keeps_the_contents_chroma_while_the_luminance_is_stylised(tmp_path):
    cli = fit(
        tmp_path,
        "--data.content",
        photo("chelsea"),
        "--data.style",
        painting("starry_night"),
        "--data.size",
        "64",
        "--trainer.max_steps",
        "30",
        "--model.color",
        "luminance",
        "--output.path",
        tmp_path / "out.png",
    )
    result, content = cli.model.result()[0], cli.datamodule.jobs[0].content
    # The network is shown the luminance alone: the content targets are the grey photo's features.
    objective = cli.model.objective
    with torch.no_grad():
        grey, colour = (objective.features(image[None]) for image in (luminance_as_rgb(content), content))
    for layer, target in objective.targets[0].content.items():
        assert torch.allclose(target, grey[layer].float(), rtol=1e-3, atol=1e-2)
        assert not torch.allclose(target, colour[layer].float(), rtol=1e-3, atol=1e-2)
    chroma_difference = (rgb_to_yiq(result)[1:] - rgb_to_yiq(content)[1:]).abs().mean().item()
    luminance_difference = (rgb_to_yiq(result)[:1] - rgb_to_yiq(content)[:1]).abs().mean().item()
    assert chroma_difference <= 0.01, chroma_difference
    assert luminance_difference > 0.03, luminance_difference  # the style went somewhere: into the luminance


def gram(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The (guided: Gatys et al. 2017) Gram, written out: (F∘m)(F∘m)ᵀ / (C·Σm²)."""
    weighted = features.double() if mask is None else features.double() * mask
    count = features[0, 0].numel() if mask is None else mask.square().sum()
    flat = weighted.flatten(2)
    return flat @ flat.transpose(1, 2) / (features.shape[1] * count)


def style_distance(cli, style: torch.Tensor) -> float:
    """Style loss of the result against one style image alone, over the objective's style layers."""
    objective = cli.model.objective
    with torch.no_grad():
        result, reference = objective.features(cli.model.result()[0][None]), objective.features(style[None])
        return sum(
            mean_squared_error(gram(result[name]), gram(reference[name])).item() for name in objective.style_layers
        )


@pytest.mark.slow
def test_blend_weights_move_the_result_towards_the_heavier_style(tmp_path):
    starry, scream = painting("starry_night"), painting("the_scream")
    distances = {}
    for blend in ("[0.9,0.1]", "[0.1,0.9]"):
        cli = fit(
            tmp_path / blend,
            "--data.content",
            photo("coffee"),
            "--data.style",
            f"[{starry},{scream}]",
            "--data.style_blend",
            blend,
            "--data.size",
            "64",
            "--trainer.max_steps",
            "40",
            "--output.dir",
            tmp_path / blend,
        )
        (job,) = cli.datamodule.jobs
        assert job.name == "coffee__starry_night+the_scream"
        distances[blend] = [style_distance(cli, style) for style in job.styles]
    # Mostly-Starry-Night is closer to Starry Night than mostly-Scream is, and the other way round.
    assert distances["[0.9,0.1]"][0] < distances["[0.1,0.9]"][0]
    assert distances["[0.1,0.9]"][1] < distances["[0.9,0.1]"][1]


def test_blend_needs_one_weight_per_style():
    with pytest.raises(UsageError, match="2 style images"):
        StyleImages(photo("chelsea"), [painting("starry_night"), painting("the_scream")], size=32, style_blend=[1.0])


def autocorrelation(image: torch.Tensor, lag: int) -> float:
    """Correlation of the image with itself shifted `lag` pixels to the side."""
    left, right = image[..., :, :-lag].flatten(), image[..., :, lag:].flatten()
    left, right = left - left.mean(), right - right.mean()
    return (left @ right / (left.norm() * right.norm())).item()


@pytest.mark.slow
def test_a_larger_style_scale_paints_coarser_strokes(tmp_path):
    correlations = {}
    for scale in ("0.5", "2.0"):
        cli = fit(
            tmp_path / scale,
            "--data.content",
            photo("coffee"),
            "--data.style",
            painting("starry_night"),
            "--data.size",
            "128",
            "--data.style_scale",
            scale,
            "--model.style_weight",
            "50",
            "--trainer.max_steps",
            "60",
            "--output.path",
            tmp_path / f"{scale}.png",
        )
        # What the style added to the photo: coarse strokes stay correlated over a longer distance.
        strokes = cli.model.result()[0] - cli.model.canvas.original_contents[0]
        correlations[scale] = autocorrelation(strokes, lag=8)
    print(f"autocorrelation of the strokes at 8 px: {correlations}")
    assert correlations["2.0"] > correlations["0.5"] + 0.03


def test_coarse_to_fine_schedule_needs_increasing_scales_and_steps_for_each():
    for scales, steps, message in (
        ([64, 32], [5, 5], "increasing"),
        ([32, 64], [5], "one number of steps per scale"),
        ([32, 64], [5, 0], "must be positive"),
    ):
        with pytest.raises(UsageError, match=message):
            StyleImages(photo("chelsea"), painting("starry_night"), scales=scales, steps=steps)
    with pytest.raises(UsageError, match="goes with --data.scales"):
        StyleImages(photo("chelsea"), painting("starry_night"), steps=[5])


def test_a_size_given_with_a_schedule_stretches_it_to_end_there_and_says_so(tmp_path, capsys):
    # A preset's schedule at another output size (print.yaml at 3000 px), not silently the preset's size.
    images = StyleImages(photo("chelsea"), painting("starry_night"), size=128, scales=[32, 64, 96], steps=[1, 2, 3])
    assert (images.schedule.scales, images.schedule.steps, images.size) == ([43, 85, 128], [1, 2, 3], 128)
    assert images.schedule.note == "--data.size 128 stretches --data.scales [32, 64, 96] to [43, 85, 128]"
    same = StyleImages(photo("chelsea"), painting("starry_night"), size=128, scales=[32, 64, 128], steps=[1, 2, 3])
    assert same.schedule.scales == [32, 64, 128] and same.schedule.note is None
    stretched_too_far = (
        r"10x7 px at 10 px.*: raise --data.size \(the schedule stretched to it starts at 10 of its 40 px\)$"
    )
    with pytest.raises(UsageError, match=stretched_too_far):
        StyleImages(photo("chelsea"), painting("starry_night"), size=40, scales=[32, 64, 128], steps=[1, 2, 3])
    merged = r"--data.size 2 is too small for the 3 scales of --data.scales \[32, 64, 128\]: give --data.size 3 or more"
    with pytest.raises(UsageError, match=merged):
        StyleImages(photo("chelsea"), painting("starry_night"), size=2, scales=[32, 64, 128], steps=[1, 2, 3])
    assert [stretch([32, 64, 128], n) for n in (2, 3, 4)] == [None, [1, 2, 3], [1, 2, 4]]
    with pytest.raises(UsageError, match="give --data.size 51 or more"):  # 50 would round 100 to 50 too
        StyleImages(photo("chelsea"), painting("starry_night"), size=50, scales=[100, 101], steps=[1, 1])
    cli = coarse_to_fine(tmp_path, "--data.size", "96")
    assert cli.model.result()[0].shape[-2:] == (64, 96)
    assert "lit-nst: --data.size 96 stretches --data.scales [32, 64] to [48, 96]" in capsys.readouterr().err


def coarse_to_fine(tmp_path, *extra: str):
    return fit(
        tmp_path,
        "--data.content",
        photo("chelsea"),
        "--data.style",
        painting("starry_night"),
        "--data.scales",
        "[32,64]",
        "--data.steps",
        "[6,6]",
        "--checkpoint.every_n_steps",
        "2",
        "--output.path",
        tmp_path / "out.png",
        *extra,
    )


@pytest.fixture(scope="module")
def straight_coarse_to_fine(tmp_path_factory):
    """One uninterrupted coarse-to-fine run, for the tests below to inspect and to equal."""
    folder = tmp_path_factory.mktemp("straight")
    return folder, coarse_to_fine(folder)


def test_coarse_to_fine_ends_at_the_last_scale_after_the_scheduled_steps(straight_coarse_to_fine):
    folder, cli = straight_coarse_to_fine
    assert cli.trainer.global_step == 12
    assert cli.model.target.shape[-1] == 64 and cli.model.stage == 1
    assert load_image(folder / "out.png", "result").size == (64, 43)


@pytest.mark.parametrize("stop", [4, 8])
def test_a_coarse_to_fine_resume_lands_in_the_right_scale_and_equals_a_straight_run(
    tmp_path, straight_coarse_to_fine, stop, capsys
):
    first = coarse_to_fine(tmp_path, "--trainer.max_steps", str(stop))
    assert first.model.stage == (0 if stop < 6 else 1)
    capsys.readouterr()
    # With its progress bar: it counts the run's steps, from the resumed one to the last.
    resumed = coarse_to_fine(tmp_path, "--ckpt_path", "last", "--trainer.enable_progress_bar", "true")
    checkpoint = run_checkpoint(tmp_path)
    stage = 1 if stop < 6 else 2
    assert f"lit-nst: resuming at step {stop} of 12, stage {stage} of 2, from {checkpoint}\n" in capsys.readouterr().err
    (bar,) = [task for task in resumed.trainer.progress_bar_callback.progress.tasks if task.description == "Stylizing"]
    assert bar.completed == bar.total == 12
    _, uninterrupted = straight_coarse_to_fine
    assert resumed.trainer.global_step == uninterrupted.trainer.global_step == 12
    assert torch.equal(resumed.model.target, uninterrupted.model.target)


def half_mask(path, side: str, size: tuple[int, int] = (512, 341)) -> str:
    """A mask with coffee's proportions, white on the `side` half."""
    width, height = size
    mask = Image.new("L", size, 0)
    box = (0, 0, width // 2, height) if side == "left" else (width // 2, 0, width, height)
    mask.paste(255, box)
    mask.save(path)
    return str(path)


def region_style_loss(cli, style: torch.Tensor, side: str) -> float:
    """Guided-Gram style loss of one half of the result against one style image, over the style layers."""
    objective = cli.model.objective
    result = cli.model.result()[0]
    mask = torch.zeros(1, 1, *result.shape[-2:])
    half = result.shape[-1] // 2
    mask[..., :half] = 1.0 if side == "left" else 0.0
    mask[..., half:] = 0.0 if side == "left" else 1.0
    with torch.no_grad():
        features, reference = objective.features(result[None]), objective.features(style[None])
        return sum(
            mean_squared_error(
                gram(features[name], interpolate(mask, size=features[name].shape[-2:], mode="area")),
                gram(reference[name]),
            ).item()
            for name in objective.style_layers
        )


@pytest.mark.slow
def test_region_styles_lower_each_regions_own_style_loss(tmp_path):
    left, right = half_mask(tmp_path / "left.png", "left"), half_mask(tmp_path / "right.png", "right")
    styles = [painting("starry_night"), painting("the_scream")]
    losses = {}
    for name, masks in {"starry_left": [left, right], "starry_right": [right, left]}.items():
        cli = fit(
            tmp_path / name,
            "--data.content",
            photo("coffee"),
            "--data.style",
            f"[{','.join(styles)}]",
            "--data.style_masks",
            f"[{','.join(masks)}]",
            "--data.size",
            "96",
            "--trainer.max_steps",
            "40",
            "--output.path",
            tmp_path / f"{name}.png",
        )
        starry, scream = cli.datamodule.jobs[0].styles
        losses[name] = {
            ("left", "starry"): region_style_loss(cli, starry, "left"),
            ("right", "starry"): region_style_loss(cli, starry, "right"),
            ("left", "scream"): region_style_loss(cli, scream, "left"),
            ("right", "scream"): region_style_loss(cli, scream, "right"),
        }
    print(f"region style losses: {losses}")
    # Each half is closer to the style painted into it than to the same style painted into the other half.
    assert losses["starry_left"]["left", "starry"] < 0.25 * losses["starry_right"]["left", "starry"]
    assert losses["starry_left"]["right", "scream"] < 0.25 * losses["starry_right"]["right", "scream"]
    assert losses["starry_right"]["right", "starry"] < 0.25 * losses["starry_left"]["right", "starry"]
    assert losses["starry_right"]["left", "scream"] < 0.25 * losses["starry_left"]["left", "scream"]


def test_content_mask_keeps_the_photo_where_black_and_stylises_where_white_across_scales(tmp_path):
    cli = fit(
        tmp_path,
        "--data.content",
        photo("coffee"),
        "--data.style",
        painting("starry_night"),
        "--data.content_mask",
        half_mask(tmp_path / "right.png", "right"),
        "--data.scales",
        "[48,96]",
        "--data.steps",
        "[10,10]",
        "--output.path",
        tmp_path / "out.png",
    )
    result, content = cli.model.result()[0], cli.datamodule.jobs[0].content
    half = result.shape[-1] // 2
    assert result.shape[-1] == 96
    # Bilinear resizing softens the mask's edge over a pixel or two; away from it, the photo is untouched.
    assert (result[..., : half - 2] - content[..., : half - 2]).abs().max() < 1e-6
    assert (result[..., half + 2 :] - content[..., half + 2 :]).abs().mean() > 0.03


def test_region_options_are_checked_before_any_work(tmp_path):
    styles = [painting("starry_night"), painting("the_scream")]
    with pytest.raises(UsageError, match="2 masks for 1 styles"):
        StyleImages(photo("coffee"), styles[0], size=32, style_masks=[half_mask(tmp_path / "a.png", "left")] * 2)
    with pytest.raises(UsageError, match="proportions"):
        StyleImages(
            photo("coffee"), styles, size=32, style_masks=[half_mask(tmp_path / "b.png", "left", (100, 100)), None]
        )
    black = tmp_path / "black.png"
    Image.new("L", (512, 341), 0).save(black)
    with pytest.raises(UsageError, match="black everywhere"):
        StyleImages(photo("coffee"), styles[0], size=32, content_mask=str(black))


def test_styles_sharing_a_region_blend_and_a_style_without_mask_paints_the_content_mask(tmp_path):
    left = half_mask(tmp_path / "left.png", "left")
    styles = [painting("starry_night"), painting("the_scream"), painting("woman-with-hat-matisse")]
    images = StyleImages(
        photo("coffee"),
        styles,
        size=32,
        style_masks=[left, left, None],
        style_blend=[3, 1, 1],
        content_mask=half_mask(tmp_path / "right.png", "right"),
    )
    (job,) = images.jobs
    shared, unmasked = job.regions()
    assert shared.blend == pytest.approx([0.75, 0.25]) and shared.mask[..., :8].min() == 1.0
    assert unmasked.blend == [1.0] and torch.equal(unmasked.mask, job.content_mask)


def test_a_run_with_regions_resumes_to_the_same_image(tmp_path):
    masks = f"[{half_mask(tmp_path / 'left.png', 'left')},null]"
    keep = half_mask(tmp_path / "keep.png", "right")
    settings = [
        "--data.content",
        photo("coffee"),
        "--data.style",
        f"[{painting('starry_night')},{painting('the_scream')}]",
        "--data.style_masks",
        masks,
        "--data.content_mask",
        keep,
        "--data.size",
        "48",
    ]
    fit(tmp_path / "resumed", *settings, "--trainer.max_steps", "4", "--output.path", tmp_path / "a.png")
    resumed = fit(
        tmp_path / "resumed",
        *settings,
        "--trainer.max_steps",
        "8",
        "--output.path",
        tmp_path / "a.png",
        "--ckpt_path",
        "last",
    )
    straight = fit(tmp_path / "straight", *settings, "--trainer.max_steps", "8", "--output.path", tmp_path / "b.png")
    assert resumed.trainer.global_step == 8
    assert torch.equal(resumed.model.result()[0], straight.model.result()[0])
