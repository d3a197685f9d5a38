"""Several jobs in one run, several processes, mixed precision (issue: jobs, GPUs, precision)."""

import pytest
import torch

from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.images import image_to_tensor, load_image

from .helpers import REPO, fit, painting, photo, run_lit_nst

OPTIMIZERS = {
    "JobwiseLBFGS": ["--optimizer", "lit_nst.optim.JobwiseLBFGS"],
    "Adam": ["--optimizer", "Adam", "--optimizer.lr", "0.02"],
}


ASTRONAUT = str(REPO / "assets" / "astronaut.jpg")  # square, unlike the landscape test photos


def listed(*paths: str) -> str:
    return "[" + ",".join(paths) + "]"


def read(path) -> torch.Tensor:
    return image_to_tensor(load_image(path, "result"))


def test_product_pairs_every_content_with_every_style_and_zip_pairs_in_order():
    contents, styles = [photo("tubingen"), photo("golden_gate")], [painting("starry_night"), painting("the_scream")]
    product = StyleImages(contents, styles, size=32)
    assert [job.name for job in product.jobs] == [
        "tubingen__starry_night", "tubingen__the_scream", "golden_gate__starry_night", "golden_gate__the_scream",
    ]  # fmt: skip
    zipped = StyleImages(contents, styles, size=32, pairs="zip")
    assert [job.name for job in zipped.jobs] == ["tubingen__starry_night", "golden_gate__the_scream"]
    with pytest.raises(UsageError, match="as many contents as styles"):
        StyleImages(contents, styles[:1], size=32, pairs="zip")


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_a_job_alone_and_in_a_batch_of_mixed_shapes_give_the_same_image(tmp_path, optimizer):
    # tubingen and golden_gate are 48x36 at this size, the astronaut 48x48: two shapes in one target.
    contents = {"tubingen": photo("tubingen"), "golden_gate": photo("golden_gate"), "astronaut": ASTRONAUT}
    settings = ["--data.size", "48", "--trainer.max_steps", "15", *OPTIMIZERS[optimizer]]
    fit(tmp_path / "batch", "--data.content", listed(*contents.values()), "--data.style", painting("starry_night"),
        "--output.dir", tmp_path / "batch", *settings)  # fmt: skip
    for name, content in contents.items():
        fit(tmp_path / name, "--data.content", content, "--data.style", painting("starry_night"),
            "--output.dir", tmp_path / name, *settings)  # fmt: skip
        alone, batched = (
            read(tmp_path / name / f"{name}__starry_night.png"),
            read(tmp_path / "batch" / f"{name}__starry_night.png"),
        )
        assert alone.shape == batched.shape == ((3, 48, 48) if name == "astronaut" else (3, 36, 48))
        assert (alone - batched).abs().max() <= 2 / 255, name


def test_mixed_shapes_go_coarse_to_fine_each_at_its_own_size_as_if_alone(tmp_path):
    contents = {"tubingen": photo("tubingen"), "astronaut": ASTRONAUT}
    settings = ["--data.scales", "[32,48]", "--data.steps", "[4,4]", "--data.style", painting("the_scream")]
    fit(tmp_path / "batch", "--data.content", listed(*contents.values()), "--output.dir", tmp_path / "batch", *settings)
    for name, content in contents.items():
        fit(tmp_path / name, "--data.content", content, "--output.dir", tmp_path / name, *settings)
        alone, batched = (read(tmp_path / folder / f"{name}__the_scream.png") for folder in (name, "batch"))
        assert batched.shape == ((3, 48, 48) if name == "astronaut" else (3, 36, 48))
        assert (alone - batched).abs().max() <= 2 / 255, name


def test_torch_lbfgs_is_refused_for_several_jobs(tmp_path):
    with pytest.raises(UsageError, match="JobwiseLBFGS"):
        fit(tmp_path, "--data.content", listed(photo("tubingen"), photo("golden_gate")),
            "--data.style", painting("starry_night"), "--data.size", "32", "--output.dir", tmp_path,
            "--optimizer", "LBFGS")  # fmt: skip


THREE_JOBS = [
    "--data.content", "[{t},{g},{a}]", "--data.style", "[{s},{m},{m}]", "--data.pairs", "zip", "--data.size", "48",
]  # fmt: skip
NAMES = ["tubingen__starry_night", "golden_gate__the_scream", "astronaut__the_scream"]  # two shapes


def three_jobs() -> list[str]:
    paths = {
        "t": photo("tubingen"),
        "g": photo("golden_gate"),
        "a": ASTRONAUT,
        "s": painting("starry_night"),
        "m": painting("the_scream"),
    }
    return [arg.format(**paths) for arg in THREE_JOBS]


def ddp(processes: int) -> list[str]:
    return ["--trainer.accelerator", "cpu", "--trainer.devices", str(processes), "--trainer.strategy", "ddp"]


def test_two_processes_split_three_jobs_and_equal_one_process(tmp_path):
    common = ["fit", *three_jobs(), "--trainer.max_steps", "10", "--trainer.enable_progress_bar", "false"]
    for processes in (1, 2):
        folder = tmp_path / f"p{processes}"
        result = run_lit_nst(*common, *ddp(processes), "--trainer.default_root_dir", folder, "--output.dir", folder)
        assert result.returncode == 0, result.stderr
    for name in NAMES:
        one, two = read(tmp_path / "p1" / f"{name}.png"), read(tmp_path / "p2" / f"{name}.png")
        assert (one - two).abs().max() <= 2 / 255, name


def test_a_two_process_checkpoint_resumes_on_one_process(tmp_path):
    common = ["fit", *three_jobs(), "--trainer.enable_progress_bar", "false"]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    first = run_lit_nst(*common, *ddp(2), "--trainer.max_steps", "5", "--trainer.default_root_dir", resumed,
                        "--output.dir", resumed)  # fmt: skip
    assert first.returncode == 0, first.stderr
    fit(resumed, *three_jobs(), "--trainer.max_steps", "10", "--output.dir", resumed, "--ckpt_path", "last")
    fit(straight, *three_jobs(), "--trainer.max_steps", "10", "--output.dir", straight)
    for name in NAMES:
        assert (read(resumed / f"{name}.png") - read(straight / f"{name}.png")).abs().max() <= 2 / 255, name


def test_bf16_mixed_stays_within_5_percent_of_float32(tmp_path):
    totals = {}
    for precision in ("32-true", "bf16-mixed"):
        cli = fit(tmp_path / precision, "--data.content", photo("tubingen"), "--data.style", painting("starry_night"),
                  "--data.size", "64", "--trainer.max_steps", "20", "--trainer.precision", precision,
                  "--output.path", tmp_path / f"{precision}.png")  # fmt: skip
        with torch.no_grad():
            totals[precision] = cli.model.objective(cli.model.result()).total.item()
    assert totals["bf16-mixed"] == pytest.approx(totals["32-true"], rel=0.05)


def test_grams_stay_float32_under_bf16(tmp_path):
    cli = fit(tmp_path, "--data.content", photo("tubingen"), "--data.style", painting("starry_night"),
              "--data.size", "32", "--trainer.max_steps", "1", "--trainer.precision", "bf16-mixed",
              "--output.path", tmp_path / "o.png")  # fmt: skip
    (region,) = cli.model.objective.targets[0].regions
    assert all(gram.dtype == torch.float32 for gram in region.grams.values())


def test_a_run_that_cannot_fit_is_refused_before_the_first_step_naming_a_size_that_fits(tmp_path):
    output = tmp_path / "out.png"
    result = run_lit_nst(
        "fit", "--data.content", photo("tubingen"), "--data.style", painting("starry_night"), "--data.size", "9000",
        "--trainer.default_root_dir", tmp_path, "--output.path", output, "--trainer.enable_progress_bar", "false",
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "GiB but the device has" in error and "use --data.size" in error, error
    suggested = int(error.split("use --data.size ")[1].split()[0])
    assert 16 <= suggested < 9000
    assert not output.exists()


def test_memory_estimate_grows_with_pixels_and_history():
    from lit_nst.backbone import VGGFeatures
    from lit_nst.memory import estimate_run_bytes
    from lit_nst.weights import strip_features_prefix

    from .helpers import random_vgg_state

    backbone = VGGFeatures("vgg19", strip_features_prefix(random_vgg_state("vgg19")), ["relu5_1"])
    small = estimate_run_bytes(backbone, [(256, 256)], 2, 4)
    large = estimate_run_bytes(backbone, [(512, 512)], 2, 4)
    weights = sum(b.numel() * b.element_size() for b in backbone.buffers())
    assert (large - weights) == pytest.approx(4 * (small - weights), rel=0.05)
    assert estimate_run_bytes(backbone, [(256, 256)], 203, 4) > small
    # a landscape and a portrait photo: the canvas is square, but L-BFGS histories hold each picture's pixels
    mixed = [(192, 256), (256, 192)]
    padding = 2 * 3 * (256 * 256 - 192 * 256) * 4  # bytes of one vector's padding, both jobs
    on_canvas = estimate_run_bytes(backbone, mixed, 203, 4)
    assert on_canvas - estimate_run_bytes(backbone, mixed, 203, 4, optimizer_on_pictures=True) == 203 * padding
