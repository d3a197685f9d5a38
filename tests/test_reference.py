"""Our objective and optimisation against the independent figures in ../shared/reference.md."""

import pytest
import torch

from lit_nst.data import StyleImages
from lit_nst.module import StyleTransfer

from .helpers import CONTENT, STYLE, VGG16_CAFFE, fit, require_shared

# (content, style, arch/weights) -> (content loss, style loss, total) at step 0; content weight 1, style weight 5.
STEP_ZERO = {
    ("tubingen", "starry_night", "caffe"): (0.0, 338_187, 1_690_935),
    ("golden_gate", "the_scream", "caffe"): (0.0, 161_889, 809_444),
    ("tubingen", "starry_night", "vgg16"): (0.0, 127_550, 5 * 127_550),
}


def reference_pair(content: str, style: str) -> list[str]:
    return [
        "--data.content", str(require_shared(CONTENT / f"{content}.jpg")),
        "--data.style", str(require_shared(STYLE / f"{style}.jpg")),
        "--data.size", "128", "--model.content_weight", "1", "--model.style_weight", "5",
    ]  # fmt: skip


@pytest.mark.parametrize(("content", "style", "weights"), list(STEP_ZERO))
def test_step_zero_losses_match_the_reference_within_2_percent(content, style, weights):
    images = StyleImages(
        str(require_shared(CONTENT / f"{content}.jpg")), str(require_shared(STYLE / f"{style}.jpg")), size=128
    )
    if weights == "vgg16":
        model = StyleTransfer(arch="vgg16", weights=str(require_shared(VGG16_CAFFE)), preprocessing="caffe")
    else:
        model = StyleTransfer()
    contents = torch.stack([job.content for job in images.jobs])
    model.objective.style_weight = 5.0
    model.objective.set_targets(contents, [job.style for job in images.jobs])
    terms = model.objective(contents)
    expected_content, expected_style, expected_total = STEP_ZERO[(content, style, weights)]
    assert terms.content.item() == pytest.approx(expected_content, abs=1e-3)
    assert terms.style.item() == pytest.approx(expected_style, rel=0.02)
    assert terms.total.item() == pytest.approx(expected_total, rel=0.02)


# One L-BFGS iteration per step, as reference.md ran it (torch's default max_iter is 20).
LBFGS = ["--optimizer", "LBFGS", "--optimizer.lr", "1", "--optimizer.max_iter", "1", "--optimizer.history_size", "100"]


@pytest.mark.parametrize(
    ("content", "style", "optimizer", "steps", "expected_total"),
    [
        ("tubingen", "starry_night", LBFGS, 50, 293_188),
        ("golden_gate", "the_scream", LBFGS, 50, 192_481),
        ("tubingen", "starry_night", ["--optimizer", "Adam", "--optimizer.lr", "0.02"], 200, 240_504),
    ],
)
def test_final_total_is_within_15_percent_of_the_reference(tmp_path, content, style, optimizer, steps, expected_total):
    cli = fit(
        tmp_path, *reference_pair(content, style), *optimizer, "--trainer.max_steps", steps,
        "--output.path", tmp_path / "out.png",
    )  # fmt: skip
    with torch.no_grad():
        total = cli.model.objective(cli.model.result()).total.item()
    print(f"{content} x {style}, {optimizer[1]} {steps} steps: total {total:,.0f} (reference {expected_total:,})")
    assert total == pytest.approx(expected_total, rel=0.15)
