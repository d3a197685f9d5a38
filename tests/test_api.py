"""`lit_nst.stylize`: the command as a Python call, for notebooks and scripts."""

import pytest
import torch
from PIL import Image

import lit_nst
from lit_nst.images import image_to_tensor, load_image, resize_longer_side

from .helpers import painting, photo, run_checkpoint, run_main

QUICK = {"size": 64, "max_steps": 3, "enable_progress_bar": False}


def expected_size(path: str, size: int) -> tuple[int, int]:
    return resize_longer_side(load_image(path, "content"), size, "content").size


def test_paths_in_give_a_pil_image_of_the_contents_size():
    result = lit_nst.stylize(photo("chelsea"), painting("starry_night"), **QUICK)
    assert isinstance(result, Image.Image)
    assert result.size == expected_size(photo("chelsea"), 64) == (64, 43)


def test_pil_images_and_tensors_in_give_the_same_picture_as_paths():
    from_paths = lit_nst.stylize(photo("chelsea"), painting("starry_night"), **QUICK)
    content, style = Image.open(photo("chelsea")), Image.open(painting("starry_night"))
    from_pil = lit_nst.stylize(content, style, **QUICK)
    from_tensors = lit_nst.stylize(
        image_to_tensor(content.convert("RGB")), image_to_tensor(style.convert("RGB")), **QUICK
    )
    reference = image_to_tensor(from_paths)
    assert not torch.equal(reference, image_to_tensor(resize_longer_side(content, 64, "content")))  # repainted
    for result in (from_pil, from_tensors):
        assert result.size == from_paths.size
        assert (image_to_tensor(result) - reference).abs().max() <= 2 / 255


def test_lists_in_give_a_list_out_in_job_order():
    results = lit_nst.stylize([photo("chelsea"), photo("astronaut")], painting("the_scream"), **QUICK)
    assert [image.size for image in results] == [(64, 43), (64, 64)]


def test_settings_take_the_clis_names_and_an_ambiguous_one_names_its_groups():
    result = lit_nst.stylize(
        photo("coffee"),
        painting("starry_night"),
        **{**QUICK, "color": "luminance", "style_weight": 100.0, "history_size": 10},
    )
    assert result.size == (64, 43)
    with pytest.raises(lit_nst.UsageError, match="'every_n_steps' is in several groups"):
        lit_nst.stylize(photo("coffee"), painting("starry_night"), every_n_steps=2, **QUICK)
    with pytest.raises(lit_nst.UsageError, match="unknown setting 'sise'"):
        lit_nst.stylize(photo("coffee"), painting("starry_night"), sise=64)


def test_a_bad_path_is_the_same_usage_error_as_the_cli(tmp_path, capfd):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(lit_nst.UsageError) as raised:
        lit_nst.stylize(str(missing), painting("starry_night"), **QUICK)
    result = run_main(
        capfd,
        "fit",
        "--data.content",
        missing,
        "--data.style",
        painting("starry_night"),
        "--trainer.default_root_dir",
        tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"lit-nst: error: {raised.value}"
    with pytest.raises(lit_nst.UsageError, match="data.size"):
        lit_nst.stylize(photo("coffee"), painting("starry_night"), size="big")


@pytest.mark.parametrize("tiling", [{}, {"tile_size": 16}], ids=["whole", "in blocks"])
def test_a_call_prints_no_lightning_banner_and_leaves_nothing_behind(tmp_path, capfd, monkeypatch, tiling):
    monkeypatch.chdir(tmp_path)
    lit_nst.stylize(photo("coffee"), painting("starry_night"), **QUICK, **tiling)
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)
    assert list(tmp_path.iterdir()) == []


def test_with_a_root_dir_a_call_checkpoints_and_resumes(tmp_path):
    settings = {**QUICK, "default_root_dir": str(tmp_path)}
    lit_nst.stylize(photo("coffee"), painting("starry_night"), **settings)
    assert run_checkpoint(tmp_path).is_file()
    resumed = lit_nst.stylize(
        photo("coffee"), painting("starry_night"), **{**settings, "max_steps": 6}, ckpt_path="last"
    )
    straight = lit_nst.stylize(photo("coffee"), painting("starry_night"), **{**QUICK, "max_steps": 6})
    assert torch.equal(image_to_tensor(resumed), image_to_tensor(straight))
