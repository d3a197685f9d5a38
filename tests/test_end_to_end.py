"""Real weights, real images, real processes, at tiny sizes."""

import csv
from pathlib import Path

import pytest
import torch

from lit_nst.images import image_to_tensor, load_image, resize_longer_side

from .helpers import CONTENT, REPO, STYLE, VGG16_CAFFE, fit, require_shared, run_lit_nst

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def metrics(root: Path) -> list[dict[str, str]]:
    (path,) = root.rglob("metrics.csv")
    with path.open() as stream:
        return [row for row in csv.DictReader(stream) if row.get("loss/total")]


def test_lit_nst_fit_stylizes_a_photo_with_real_vgg16_weights(tmp_path):
    content = require_shared(CONTENT / "tubingen.jpg")
    output = tmp_path / "out" / "stylized.png"
    result = run_lit_nst(
        "fit", "--data.content", content, "--data.style", require_shared(STYLE / "starry_night.jpg"),
        "--data.size", "64", "--model.arch", "vgg16", "--model.weights", require_shared(VGG16_CAFFE),
        "--model.preprocessing", "caffe", "--model.style_weight", "50", "--trainer.max_steps", "30",
        "--optimizer", "LBFGS", "--optimizer.max_iter", "1",
        "--trainer.default_root_dir", tmp_path, "--output.path", output,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = metrics(tmp_path)
    assert len(rows) == 30
    for key in ("loss/content", "loss/style", "loss/tv", "loss/total"):
        assert key in rows[0]
    first, last = float(rows[0]["loss/style"]), float(rows[-1]["loss/style"])
    assert last < 0.2 * first, (first, last)
    stylized = image_to_tensor(load_image(output, "result"))
    photo = image_to_tensor(resize_longer_side(load_image(content, "content"), 64, "content"))
    assert stylized.shape == photo.shape
    assert (stylized - photo).abs().mean() > 0.02  # visibly repainted


def test_default_output_is_stylized_png_in_the_log_directory(tmp_path):
    cli = fit(
        tmp_path, "--data.content", require_shared(CONTENT / "golden_gate.jpg"),
        "--data.style", require_shared(STYLE / "the_scream.jpg"), "--data.size", "32", "--trainer.max_steps", "2",
    )  # fmt: skip
    assert (Path(cli.trainer.log_dir) / "stylized.png").is_file()


def test_snapshots_every_n_steps(tmp_path):
    fit(
        tmp_path, "--data.content", require_shared(CONTENT / "golden_gate.jpg"),
        "--data.style", require_shared(STYLE / "the_scream.jpg"), "--data.size", "32", "--trainer.max_steps", "4",
        "--output.path", tmp_path / "out.png", "--output.every_n_steps", "2",
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.glob("out*.png")) == ["out.png", "out_step00002.png", "out_step00004.png"]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_shipped_config_runs_at_toy_size(tmp_path, config):
    cli = fit(
        tmp_path, "--config", config, "--data.content", require_shared(CONTENT / "tubingen.jpg"),
        "--data.style", require_shared(STYLE / "starry_night.jpg"), "--data.size", "32", "--trainer.max_steps", "2",
        "--output.path", tmp_path / "out.png",
    )  # fmt: skip
    assert cli.trainer.global_step == 2
    assert (tmp_path / "out.png").is_file()
    assert torch.isfinite(cli.model.target).all()
