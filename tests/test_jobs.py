"""Several jobs in one run, several processes, mixed precision (issue: jobs, GPUs, precision)."""

import pytest
import torch

from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.images import image_to_tensor, load_image
from lit_nst.module import StyleTransfer
from lit_nst.objective.initial import job_seed

from .helpers import REPO, ddp, fit, painting, photo, run_checkpoint, run_lit_nst, run_main

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
    contents, styles = [photo("chelsea"), photo("coffee")], [painting("starry_night"), painting("the_scream")]
    product = StyleImages(contents, styles, size=32)
    assert [job.name for job in product.jobs] == [
        "chelsea__starry_night",
        "chelsea__the_scream",
        "coffee__starry_night",
        "coffee__the_scream",
    ]
    zipped = StyleImages(contents, styles, size=32, pairs="zip")
    assert [job.name for job in zipped.jobs] == ["chelsea__starry_night", "coffee__the_scream"]
    with pytest.raises(UsageError, match="as many contents as styles"):
        StyleImages(contents, styles[:1], size=32, pairs="zip")


@pytest.mark.parametrize("optimizer", ["JobwiseLBFGS", pytest.param("Adam", marks=pytest.mark.slow)])
def test_a_job_alone_and_in_a_batch_of_mixed_shapes_give_the_same_image(tmp_path, optimizer):
    # chelsea and coffee are 48x32 at this size, the astronaut 48x48: two shapes in one target.
    contents = {"chelsea": photo("chelsea"), "coffee": photo("coffee"), "astronaut": ASTRONAUT}
    settings = ["--data.size", "48", "--trainer.max_steps", "15", *OPTIMIZERS[optimizer]]
    fit(
        tmp_path / "batch",
        "--data.content",
        listed(*contents.values()),
        "--data.style",
        painting("starry_night"),
        "--output.dir",
        tmp_path / "batch",
        *settings,
    )
    for name, content in contents.items():
        fit(
            tmp_path / name,
            "--data.content",
            content,
            "--data.style",
            painting("starry_night"),
            "--output.dir",
            tmp_path / name,
            *settings,
        )
        alone, batched = (
            read(tmp_path / name / f"{name}__starry_night.png"),
            read(tmp_path / "batch" / f"{name}__starry_night.png"),
        )
        assert alone.shape == batched.shape == ((3, 48, 48) if name == "astronaut" else (3, 32, 48))
        assert torch.equal(alone, batched), name  # each job passes the network alone, with its own history


def test_mixed_shapes_go_coarse_to_fine_each_at_its_own_size_as_if_alone(tmp_path):
    contents = {"chelsea": photo("chelsea"), "astronaut": ASTRONAUT}
    settings = ["--data.scales", "[32,48]", "--data.steps", "[4,4]", "--data.style", painting("the_scream")]
    fit(tmp_path / "batch", "--data.content", listed(*contents.values()), "--output.dir", tmp_path / "batch", *settings)
    for name, content in contents.items():
        fit(tmp_path / name, "--data.content", content, "--output.dir", tmp_path / name, *settings)
        alone, batched = (read(tmp_path / folder / f"{name}__the_scream.png") for folder in (name, "batch"))
        assert batched.shape == ((3, 48, 48) if name == "astronaut" else (3, 32, 48))
        assert torch.equal(alone, batched), name


def test_torch_lbfgs_is_refused_for_several_jobs(tmp_path):
    with pytest.raises(UsageError, match="JobwiseLBFGS"):
        fit(
            tmp_path,
            "--data.content",
            listed(photo("chelsea"), photo("coffee")),
            "--data.style",
            painting("starry_night"),
            "--data.size",
            "32",
            "--output.dir",
            tmp_path,
            "--optimizer",
            "LBFGS",
        )


THREE_JOBS = [
    "--data.content",
    "[{t},{g},{a}]",
    "--data.style",
    "[{s},{m},{m}]",
    "--data.pairs",
    "zip",
    "--data.size",
    "48",
]
NAMES = ["chelsea__starry_night", "coffee__the_scream", "astronaut__the_scream"]  # two shapes


def three_jobs() -> list[str]:
    paths = {
        "t": photo("chelsea"),
        "g": photo("coffee"),
        "a": ASTRONAUT,
        "s": painting("starry_night"),
        "m": painting("the_scream"),
    }
    return [arg.format(**paths) for arg in THREE_JOBS]


@pytest.mark.slow
def test_two_processes_split_three_jobs_equal_one_process_and_their_checkpoint_resumes_on_one(tmp_path):
    """One DDP launch, two properties: its images equal one process's, and its step-5 checkpoint, resumed on one
    process to step 10, equals one process's too. (Resuming a DDP run's `last` is the SIGTERM tests' part, in
    test_combinations.)"""
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    fit(one, *three_jobs(), "--trainer.max_steps", "10", "--output.dir", one)
    result = run_lit_nst(
        "fit",
        *three_jobs(),
        *ddp(2),
        "--trainer.max_steps",
        "10",
        "--trainer.default_root_dir",
        two,
        "--output.dir",
        two,
        "--checkpoint.every_n_steps",
        "5",
        "--checkpoint.keep",
        "-1",
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert (read(one / f"{name}.png") - read(two / f"{name}.png")).abs().max() <= 2 / 255, name
    halfway = run_checkpoint(two, "step-000005.ckpt")
    fit(resumed, *three_jobs(), "--trainer.max_steps", "10", "--output.dir", resumed, "--ckpt_path", halfway)
    for name in NAMES:
        assert (read(resumed / f"{name}.png") - read(one / f"{name}.png")).abs().max() <= 2 / 255, name


@pytest.mark.parametrize("content", ["chelsea", "coffee"])
def test_bf16_mixed_evaluates_the_objective_within_one_and_a_half_percent_of_float32(content):
    # One evaluation, not a trajectory: at toy sizes L-BFGS's first steps amplify any rounding (5-15 % apart
    # after 10 steps at 48 px, either way); BENCHMARKS.md compares whole runs at 512 px where bf16 is native.
    images = StyleImages(photo(content), painting("starry_night"), size=48)
    model = StyleTransfer()
    (job,) = images.jobs
    model.objective.set_targets([job.content], [job.style])
    image = (job.content + 0.1 * torch.randn(job.content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():
        full = model.objective([image])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model.objective([image])
    print(f"{content}: total {full.total.item():,.0f} in float32, {half.total.item():,.0f} in bf16-mixed")
    for term in ("content", "style", "total"):
        assert getattr(half, term).item() == pytest.approx(getattr(full, term).item(), rel=0.015), term
    assert half.total.dtype == torch.float32


@pytest.mark.parametrize("loss", ["gram", "w2"])
def test_moments_taken_inside_a_bf16_training_step_are_float32_to_float64_accuracy(tmp_path, monkeypatch, loss):
    from lit_nst.objective import objective

    taken, original = [], objective.moment_sums

    def recording(features, mask, with_mean):
        first, second = original(features, mask, with_mean)
        taken.append((features.detach(), first, second.detach()))
        return first, second

    monkeypatch.setattr(objective, "moment_sums", recording)
    fit(
        tmp_path,
        "--data.content",
        photo("chelsea"),
        "--data.style",
        painting("starry_night"),
        "--data.size",
        "32",
        "--trainer.max_steps",
        "1",
        "--trainer.precision",
        "bf16-mixed",
        "--trainer.limit_val_batches",
        "0",
        "--output.path",
        tmp_path / "o.png",
        "--model.style_loss",
        loss,
    )
    in_step = [taking for taking in taken if taking[0].dtype == torch.bfloat16]
    assert len(in_step) == 5  # one per style layer: the features of the step came from bf16 convolutions
    for features, first, second in in_step:
        assert second.dtype == torch.float32 and (first is None) == (loss == "gram")
        flat = features.double().flatten(2)
        reference = flat @ flat.transpose(1, 2)
        assert torch.allclose(second.double(), reference, rtol=1e-5, atol=1e-6 * reference.abs().max().item())
        if first is not None:
            assert first.dtype == torch.float32
            assert torch.allclose(first.double(), flat.sum(-1), rtol=1e-5, atol=1e-6 * flat.sum(-1).abs().max().item())


def test_the_vgg_weights_are_cast_to_bf16_once_per_run_not_every_forward():
    from lit_nst.objective.backbone import VGGFeatures
    from lit_nst.objective.weights import strip_features_prefix

    from .helpers import random_vgg_state

    backbone = VGGFeatures("vgg19", strip_features_prefix(random_vgg_state("vgg19")), ["relu2_1"])
    image = torch.rand(1, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = backbone(image)["relu2_1"]
        copies = backbone._autocast_weights[1]
        second = backbone(image)["relu2_1"]
        assert backbone._autocast_weights[1] is copies
    assert all(weight.dtype == torch.bfloat16 for weight, _ in copies.values())
    assert first.dtype == torch.bfloat16 and torch.equal(first, second)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_alone = torch.nn.functional.conv2d(
            image, backbone.features[0].weight, backbone.features[0].bias, padding=1
        )
    assert torch.equal(backbone._autocast_weights[1][0][0], backbone.features[0].weight.to(torch.bfloat16))
    assert autocast_alone.dtype == torch.bfloat16
    assert backbone(image)["relu2_1"].dtype == torch.float32  # outside autocast: the float32 buffers


def test_a_run_that_cannot_fit_is_refused_before_the_first_step_naming_a_size_that_fits(tmp_path, capfd):
    output = tmp_path / "out.png"
    result = run_main(
        capfd,
        "fit",
        "--data.content",
        photo("chelsea"),
        "--data.style",
        painting("starry_night"),
        "--data.size",
        "9000",
        "--trainer.default_root_dir",
        tmp_path,
        "--output.path",
        output,
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "GiB but the device has" in error and "use --data.size" in error, error
    suggested = int(error.split("use --data.size ")[1].split()[0])
    assert 16 <= suggested < 9000
    assert not output.exists()


def test_memory_estimate_grows_with_pixels_and_history():
    from lit_nst.memory import estimate_run_bytes
    from lit_nst.objective.backbone import VGGFeatures
    from lit_nst.objective.weights import strip_features_prefix

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


def test_the_memory_check_counts_a_ranks_own_jobs_and_every_process_on_one_machine():
    """Under DDP a rank's network sees its own jobs only; CPU processes share the one machine's memory."""
    from lit_nst.memory import GIB, estimate_run_bytes, fit_refusal
    from lit_nst.objective.backbone import VGGFeatures
    from lit_nst.objective.weights import strip_features_prefix

    from .helpers import random_vgg_state

    backbone = VGGFeatures("vgg19", strip_features_prefix(random_vgg_state("vgg19")), ["relu5_1"])
    shapes = [(256, 256)] * 4
    every = estimate_run_bytes(backbone, shapes, 2, 4)
    two = estimate_run_bytes(backbone, shapes, 2, 4, active_jobs=[0, 2])  # rank 0 of 2
    one = estimate_run_bytes(backbone, shapes, 2, 4, active_jobs=[0])
    assert two - one > 0 and every - two == 2 * (two - one)  # two jobs' activations fewer, the canvas the same
    assert fit_refusal(10 * GIB, 1, 15 * GIB, 512, ["fewer jobs per device"]) is None
    refusal = fit_refusal(10 * GIB, 2, 15 * GIB, 512, ["fewer jobs per device"])
    assert refusal.startswith("this run needs about 20.0 GiB (2 processes of 10.0 GiB) but the device has 15.0 GiB")


def test_a_noise_start_is_the_jobs_own_whatever_its_company(tmp_path):
    """`--model.init noise` is drawn per job: chelsea starts from the same noise alone and third of three jobs."""
    unmoved = [
        "--model.init",
        "noise",
        "--optimizer",
        "Adam",
        "--optimizer.lr",
        "0",
        "--trainer.max_steps",
        "1",
        "--data.style",
        painting("starry_night"),
        "--data.size",
        "32",
    ]
    company = f"[{photo('coffee')},{photo('astronaut')},{photo('chelsea')}]"
    for name, contents in (("alone", photo("chelsea")), ("three", company)):
        fit(tmp_path / name, "--data.content", contents, *unmoved, "--output.dir", tmp_path / name)
    alone, among = (
        image_to_tensor(load_image(tmp_path / name / "chelsea__starry_night.png", name)) for name in ("alone", "three")
    )
    assert torch.equal(alone, among)
    content = image_to_tensor(load_image(photo("chelsea"), "content").resize(alone.shape[:0:-1]))
    assert (alone - content).abs().mean() > 0.15  # noise, not the photo


def test_a_jobs_noise_seed_stays_what_it_was():
    """A job's identity seeds its noise (and names its run's folder): a change to it paints another picture from the
    same --seed_everything. The literal is the seed lit-nst has drawn for this job since noise was seeded per job."""
    images = StyleImages(photo("chelsea"), painting("the_scream"), size=32)
    assert job_seed(0, images.jobs[0].identity()) == 146570175547699684
