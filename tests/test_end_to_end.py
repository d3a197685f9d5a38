"""Real weights, real images, whole runs of the command, at tiny sizes."""

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from rich.progress import Progress, TextColumn

from lit_nst.callbacks.table import MetricsTable
from lit_nst.images import image_to_tensor, load_image, resize_longer_side
from lit_nst.progress import StepProgressBar

from .helpers import REPO, config_scales, fit, job, painting, photo, require_vgg16, run_main, stretched_size

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def metrics(root: Path) -> list[dict[str, str]]:
    (path,) = root.rglob("metrics.csv")
    with path.open() as stream:
        return [row for row in csv.DictReader(stream) if row.get("loss/total")]


def test_lit_nst_fit_stylizes_a_photo_with_real_vgg16_weights(tmp_path, capfd):
    weights = require_vgg16()
    content = photo("chelsea")
    output = tmp_path / "out" / "stylized.png"
    result = run_main(
        capfd,
        "fit",
        "--data.content",
        content,
        "--data.style",
        painting("starry_night"),
        "--data.size",
        "64",
        "--model.arch",
        "vgg16",
        "--model.weights",
        weights,
        "--model.preprocessing",
        "caffe",
        "--model.style_weight",
        "50",
        "--trainer.max_steps",
        "30",
        "--trainer.log_every_n_steps",  # 10 by default
        "1",
        "--optimizer",
        "LBFGS",
        "--optimizer.max_iter",
        "1",
        "--trainer.default_root_dir",
        tmp_path,
        "--output.path",
        output,
    )
    assert result.returncode == 0, result.stderr
    rows = metrics(tmp_path)
    assert len(rows) == 30
    for key in ("loss/content", "loss/style", "loss/tv", "loss/total"):
        assert key in rows[0]
    first, last = float(rows[0]["loss/style"]), float(rows[-1]["loss/style"])
    assert last < 0.2 * first, (first, last)
    stylized = image_to_tensor(load_image(output, "result"))
    original = image_to_tensor(resize_longer_side(load_image(content, "content"), 64, "content"))
    assert stylized.shape == original.shape
    assert (stylized - original).abs().mean() > 0.02  # visibly repainted


def test_default_output_is_stylized_png_in_the_log_directory(tmp_path):
    cli = fit(tmp_path, *job(32, "coffee", "the_scream"), "--trainer.max_steps", "2")
    assert (Path(cli.trainer.log_dir) / "stylized.png").is_file()


def test_a_run_ends_with_a_line_naming_what_it_wrote(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = ["--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false"]
    alone = run_main(capfd, "fit", *job(32), *quick)
    assert alone.returncode == 0, alone.stderr
    (default,) = tmp_path.glob("lightning_logs/version_*/stylized.png")
    assert alone.stderr.splitlines()[-1] == f"lit-nst: wrote {default}"
    styles = ["--data.style", f"[{painting('starry_night')},{painting('the_scream')}]"]
    several = run_main(capfd, "fit", *job(32), *styles, *quick, "--output.dir", "outs", "--output.panel", "true")
    assert several.returncode == 0, several.stderr
    assert several.stderr.splitlines()[-1] == (
        "lit-nst: wrote 2 pictures in outs: chelsea__starry_night.png, chelsea__the_scream.png, "
        "each with its _panel.png"
    )
    assert len(list((tmp_path / "outs").glob("*_panel.png"))) == 2


@pytest.mark.parametrize("columns", [60, 80, 150])
def test_the_progress_bar_is_one_line_at_any_width_with_the_terms_where_there_is_room(
    tmp_path, capfd, monkeypatch, columns
):
    monkeypatch.setenv("COLUMNS", str(columns))
    capfd.readouterr()
    fit(tmp_path, *job(32), "--trainer.max_steps", "3", "--trainer.enable_progress_bar", "true")
    (bar,) = [line for line in capfd.readouterr().out.splitlines() if "3/3" in line]
    assert len(bar) <= columns and "loss: " in bar, bar
    assert ("style: " in bar) == (columns >= 150), bar


@pytest.mark.parametrize("columns", [60, 80])
def test_the_progress_bar_of_a_long_run_is_one_line_too(columns):
    # 19999/20000 (a long clip's count): the bar makes room for the count.
    progress_bar = StepProgressBar()
    progress_bar._console = Console(width=columns, file=io.StringIO(), record=True)
    columns_of_bar = progress_bar.configure_columns(SimpleNamespace(max_steps=20000))
    loss = TextColumn("loss: 1.23e+06")
    with Progress(*columns_of_bar, loss, console=progress_bar._console, auto_refresh=False) as progress:
        progress.add_task("Stylizing", total=20000, completed=19999)
        progress.refresh()
    (line,) = [line for line in progress_bar._console.export_text().splitlines() if line.strip()]
    assert "19999/20000" in line and "loss: 1.23e+06" in line and len(line) <= columns, line


def test_snapshots_every_n_steps(tmp_path):
    fit(
        tmp_path,
        *job(32, "coffee", "the_scream"),
        "--trainer.max_steps",
        "4",
        "--output.path",
        tmp_path / "out.png",
        "--output.every_n_steps",
        "2",
    )
    assert sorted(p.name for p in tmp_path.glob("out*.png")) == ["out.png", "out_step00002.png", "out_step00004.png"]


# print.yaml, in blocks at five scales, is the long one
@pytest.mark.parametrize(
    "config",
    [pytest.param(c, marks=[pytest.mark.slow] if c.name == "print.yaml" else []) for c in CONFIGS],
    ids=[c.name for c in CONFIGS],
)
def test_every_shipped_config_runs_at_toy_size(tmp_path, config):
    scales = config_scales(config)
    # A schedule runs through every one of its scales, a step each, stretched down to start at 32 px (a print's
    # in blocks); other configs two steps at 32 px.
    size = stretched_size(32, scales)
    length = ["--data.steps", f"[{','.join('1' * len(scales))}]"] if scales else ["--trainer.max_steps", "2"]
    if scales and scales[-1] > 512:
        length += ["--model.tile_size", "64"]
    cli = fit(tmp_path, "--config", config, *job(size), *length, "--output.path", tmp_path / "out.png")
    assert cli.trainer.global_step == (len(scales) if scales else 2)
    if scales:
        assert cli.datamodule.schedule.scales[0] == 32 and (cli.model.evaluation.block_walk is not None) == (
            scales[-1] > 512
        )
    written = load_image(tmp_path / "out.png", "result")
    assert max(written.size) == size
    assert torch.isfinite(cli.model.target).all()


def test_the_metrics_table_folds_a_long_job_name_and_never_cuts_a_number(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal; rich reads its width from here when not a tty
    name = "chelsea__starry_night+the_scream+the_great_wave_off_kanagawa"
    jobs = SimpleNamespace(jobs=[SimpleNamespace(name=name)])
    trainer = SimpleNamespace(is_global_zero=True, global_step=300, datamodule=jobs)
    module = SimpleNamespace(quality=[{"job": 0, "ssim": 0.551, "psnr": 14.22, "style": 1234567.8, "tv": 0.0123}])
    MetricsTable().teardown(trainer, module, "fit")
    printed = capsys.readouterr().out
    assert all(number in printed for number in ("0.551", "14.22", "1,234,567.8", "0.0123")), printed
    assert max(map(len, printed.splitlines())) <= 60
    folded = "".join(line.split("│")[1].strip() for line in printed.splitlines() if line.count("│") == 6)
    assert folded == name, printed  # the whole name, over several lines


def test_a_run_ends_with_a_metrics_table_and_logs_metrics_and_snapshots(tmp_path, capfd):
    result = run_main(
        capfd,
        "fit",
        *job(48),
        "--trainer.max_steps",
        "6",
        "--trainer.val_check_interval",
        "3",
        "--output.every_n_steps",
        "3",
        "--trainer.default_root_dir",
        tmp_path,
        "--output.path",
        tmp_path / "out.png",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "Result after step 6" in result.stdout and "SSIM" in result.stdout and "chelsea__starry_night" in result.stdout
    )
    (path,) = tmp_path.rglob("metrics.csv")
    with path.open() as stream:
        rows = [row for row in csv.DictReader(stream) if row.get("metrics/ssim")]
    assert len(rows) == 2  # steps 3 and 6
    ssim = [float(row["metrics/ssim"]) for row in rows]
    assert all(0 < value < 1 for value in ssim) and ssim[1] < ssim[0]  # stylising moves away from the photo
    images = sorted(p.name for p in path.parent.glob("images/*.png"))
    assert images == ["out_step00003.png", "out_step00006.png"]


def test_panel_shows_content_style_and_result_side_by_side(tmp_path):
    fit(
        tmp_path,
        *job(48),
        "--trainer.max_steps",
        "2",
        "--output.path",
        tmp_path / "out.png",
        "--output.panel",
        "true",
    )
    panel = load_image(tmp_path / "out_panel.png", "panel")
    result = load_image(tmp_path / "out.png", "result")
    assert panel.height > result.height  # the label strip
    assert panel.width > 2 * result.width


def test_a_panel_shows_every_painting_of_a_blend(tmp_path):
    styles = ["starry_night", "the_scream"]  # a landscape and a portrait painting
    fit(
        tmp_path,
        "--data.content",
        photo("chelsea"),
        "--data.style",
        f"[{','.join(map(painting, styles))}]",
        "--data.style_blend",
        "[0.5,0.5]",
        "--data.size",
        "48",
        "--trainer.max_steps",
        "1",
        "--output.path",
        tmp_path / "out.png",
        "--output.panel",
        "true",
    )
    panel = load_image(tmp_path / "out_panel.png", "panel")
    result = load_image(tmp_path / "out.png", "result")
    paintings = [resize_longer_side(load_image(painting(name), "style"), 48, "style") for name in styles]
    # content | style 1 | style 2 | result, each at the result's height, 8 px apart
    widths = [result.width, *(round(p.width * result.height / p.height) for p in paintings), result.width]
    assert abs(panel.width - (sum(widths) + 8 * 3)) <= 2, (panel.width, widths)


def test_ssim_taken_in_strips_of_rows_is_the_whole_images(monkeypatch):
    # A print's SSIM whole would take 4.2 GiB at 4096x2725; in strips the same value.
    from torchmetrics.functional.image import structural_similarity_index_measure

    import lit_nst.metrics

    content = image_to_tensor(load_image(photo("coffee"), "test"))[None]  # 400x600
    result = (content + 0.2 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    whole = structural_similarity_index_measure(result, content, data_range=1.0).item()
    monkeypatch.setattr(lit_nst.metrics, "SSIM_STRIP_PIXELS", 37 * content.shape[-1])  # 11 strips, the last short
    assert lit_nst.metrics.structural_similarity(result, content) == pytest.approx(whole, abs=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16-mixed run's validation: SSIM still in float32
        assert lit_nst.metrics.structural_similarity(result, content) == pytest.approx(whole, abs=1e-6)
    monkeypatch.setattr(lit_nst.metrics, "SSIM_MARGIN", 2)  # a margin short of the window's: other values
    assert abs(lit_nst.metrics.structural_similarity(result, content) - whole) > 1e-5
