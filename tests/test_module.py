import csv

import torch

from lit_nst.objective.initial import initial_image, job_seed
from lit_nst.objective.objective import normalised_layer_weights
from lit_nst.progress import StepProgressBar
from lit_nst.watch import RisingLoss

from .helpers import fit, job, run_main


def tiny_run(tmp_path, images, weights, *args):
    return fit(
        tmp_path,
        "--data.content",
        images["content"],
        "--data.style",
        images["style"],
        "--data.size",
        32,
        "--model.weights",
        weights,
        "--trainer.max_steps",
        3,
        "--output.path",
        tmp_path / "out.png",
        *args,
    )


def test_the_target_image_is_the_only_parameter(tmp_path, small_images, random_weights):
    cli = tiny_run(tmp_path, small_images, random_weights["vgg19"])
    parameters = list(cli.model.parameters())
    assert len(parameters) == 1 and parameters[0] is cli.model.target
    assert cli.model.target.shape == (1, 3, 27, 32)  # 40x48 content -> longer side 32


def test_checkpoint_holds_the_target_and_optimizer_but_no_vgg_tensor(tmp_path, small_images, random_weights):
    cli = tiny_run(tmp_path, small_images, random_weights["vgg19"])
    checkpoints = list(tmp_path.rglob("*.ckpt"))
    assert checkpoints
    checkpoint = torch.load(checkpoints[0], weights_only=False)
    assert list(checkpoint["state_dict"]) == ["target"]
    assert checkpoint["optimizer_states"]
    assert (tmp_path / "out.png").is_file()
    assert cli.trainer.global_step == 3


def test_adam_keeps_the_target_in_range_after_every_step(tmp_path, small_images, random_weights):
    cli = tiny_run(
        tmp_path,
        small_images,
        random_weights["vgg19"],
        "--optimizer",
        "Adam",
        "--optimizer.lr",
        "0.5",
    )
    assert cli.model.clamp_every_step
    assert cli.model.target.min() >= 0.0 and cli.model.target.max() <= 1.0


def test_lbfgs_is_not_clamped_between_steps(tmp_path, small_images, random_weights):
    cli = tiny_run(tmp_path, small_images, random_weights["vgg19"], "--optimizer", "LBFGS")
    assert not cli.model.clamp_every_step


def test_lbfgs_minimises_the_loss_of_the_image_as_written(tmp_path):
    # Real weights: with random ones L-BFGS's gradients are too small to move any pixel out of range.
    cli = fit(tmp_path, *job(48), "--trainer.max_steps", 6, "--output.path", tmp_path / "out.png")
    target = cli.model.target.detach()
    assert target.min() < 0.0 or target.max() > 1.0  # L-BFGS's iterate did leave [0, 1]
    with torch.no_grad():
        optimised = cli.model.objective(cli.model.canvas.picture(cli.model.target)).total
        written = cli.model.objective(cli.model.result()).total
    assert torch.allclose(optimised, written)


def test_layer_weights_default_to_equal_and_sum_to_one():
    assert normalised_layer_weights(["a", "b"], None, "content") == {"a": 0.5, "b": 0.5}
    assert normalised_layer_weights(["a", "b"], [3, 1], "style") == {"a": 0.75, "b": 0.25}


def test_inits():
    content = torch.rand(3, 8, 6)
    assert torch.equal(initial_image("content", content, 0), content)
    assert torch.equal(initial_image("white", content, 0), torch.ones_like(content))
    noise = initial_image("noise", content, 5)
    assert noise.shape == content.shape
    assert torch.equal(noise, initial_image("noise", content, 5))
    assert not torch.equal(noise, initial_image("noise", content, 6))
    assert abs(noise.mean().item() - 0.5) < 0.1 and noise.std() > 0.05


def test_a_jobs_noise_seed_follows_the_run_seed_and_the_job_not_its_place():
    job = {"content": "ab", "styles": ["cd"]}
    assert job_seed(0, job) == job_seed(0, dict(reversed(job.items())))
    assert job_seed(0, job) != job_seed(1, job)
    assert job_seed(0, job) != job_seed(0, {**job, "styles": ["ef"]})


def test_the_cli_optimizer_really_moves_the_target(tmp_path, small_images, random_weights):
    for optimizer in ("Adam", "LBFGS"):
        # Random weights give tiny losses; a large style weight brings gradients above L-BFGS's tolerance_grad. In
        # float32 whatever the CPU: bf16-mixed's rounding moves L-BFGS's three steps less (7.6e-5 measured).
        settings = ["--optimizer", optimizer, "--model.style_weight", "1e6", "--trainer.precision", "32-true"]
        cli = tiny_run(tmp_path / optimizer, small_images, random_weights["vgg19"], *settings)
        content = torch.stack([job.content for job in cli.datamodule.jobs])
        assert (cli.model.target - content).abs().max() > 1e-4, optimizer


def test_an_optimiser_that_does_not_converge_is_named_once_with_what_to_lower(tmp_path, capfd):
    """Chelsea in Starry Night at 32 px with L-BFGS at lr 3: about 40 times its start from step 2 on. At lr 1 it
    overshoots too, then recovers (lit_nst.watch): no warning there."""
    args = ["fit", *job(32), "--trainer.max_steps", "22", "--trainer.enable_progress_bar", "false"]
    for rate, warned in (("3", 1), ("1", 0)):
        folder = tmp_path / rate
        result = run_main(
            capfd,
            *args,
            "--trainer.default_root_dir",
            folder,
            "--output.path",
            folder / "o.png",
            "--optimizer.lr",
            rate,
        )
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("lit-nst: warning: the loss is")]
        assert len(warnings) == warned, result.stderr
        assert all(line.endswith("lower --optimizer.lr (to 0.5 or less) or --model.style_weight") for line in warnings)


def test_the_rising_loss_watch_waits_starts_again_at_each_stage_and_says_it_once():
    watch = RisingLoss()
    assert watch.update(100.0, stage=0, step=0) is None
    assert watch.update(1e4, stage=0, step=2) is None  # an overshoot early in a stage: L-BFGS often recovers
    assert watch.update(5000.0, stage=1, step=3) is None  # a finer stage starts higher: its own start
    assert watch.update(4000.0, stage=1, step=23) is None  # below its start: converging
    assert "is 5.1e+03 at step 24, still above the 5e+03 its stage began with at step 3" in watch.update(
        5100.0, stage=1, step=24
    )
    assert watch.update(1e9, stage=1, step=30) is None  # once
    assert watch.at_end() is None
    short = RisingLoss()  # a run too short to wait 20 steps: said at its end, if it ends above its stage's start
    for step, value in enumerate((100.0, 1e4, *[300.0] * 10)):
        short.update(value, stage=0, step=step)
    assert short.at_end().startswith("the loss ended at 300, above the 100 its stage began with at step 0")
    toy = RisingLoss()  # a few steps: L-BFGS's overshoot, not yet a sign of anything
    for step, value in enumerate((100.0, 1e4, 300.0)):
        toy.update(value, stage=0, step=step)
    assert toy.at_end() is None


def test_losses_reach_the_log_every_log_every_n_steps_and_the_bar_every_step(tmp_path):
    cli = fit(tmp_path, *job(32), "--trainer.max_steps", 12, "--trainer.enable_progress_bar", "true")
    (path,) = tmp_path.rglob("metrics.csv")
    with path.open() as stream:
        rows = [row for row in csv.DictReader(stream) if row.get("loss/total")]
    assert [row["step"] for row in rows] == ["9"]  # --trainer.log_every_n_steps is 10 by default
    bar = next(callback for callback in cli.trainer.callbacks if isinstance(callback, StepProgressBar))
    shown = bar.get_metrics(cli.trainer, cli.model)
    assert set(cli.model.live_losses) == {"loss/content", "loss/style", "loss/tv", "loss/total"}
    assert cli.model.live_losses["loss/total"] == cli.model.step_loss  # step 12's, not step 10's
    assert shown["loss"] == f"{cli.model.step_loss:.3g}" and float(rows[0]["loss/total"]) != cli.model.step_loss
