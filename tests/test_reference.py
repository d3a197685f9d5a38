"""Our objective and optimisation against the independent figures in ../shared/reference.md.

The bundled pairs' figures are copied here, so these tests run on a fresh clone; only the VGG16 figure
needs ../shared (its weights file and its photo).
"""

import pytest
import torch

from lit_nst.data import StyleImages
from lit_nst.module import StyleTransfer

from .helpers import REPO, fit, painting, photo, require_vgg16

# (content, style, weights) -> (content loss, style loss, total) at step 0; content weight 1, style weight 5.
STEP_ZERO = {
    ("chelsea", "starry_night", "caffe"): (0.0, 394_213, 1_971_065),
    ("coffee", "the_scream", "caffe"): (0.0, 329_471, 1_647_355),
    ("tubingen", "starry_night", "vgg16"): (0.0, 127_550, 5 * 127_550),
}
# The reference ran in float32, as these do whatever the machine's default precision.
FLOAT32 = ["--trainer.precision", "32-true"]


def reference_pair(content: str, style: str) -> list[str]:
    return [
        "--data.content",
        photo(content),
        "--data.style",
        painting(style),
        "--data.size",
        "128",
        "--model.content_weight",
        "1",
        "--model.style_weight",
        "5",
        *FLOAT32,
    ]


@pytest.mark.parametrize(("content", "style", "weights"), list(STEP_ZERO))
def test_step_zero_losses_match_the_reference_within_2_percent(content, style, weights):
    if weights == "vgg16":
        vgg16 = require_vgg16()
        shared_images = REPO.parent / "shared" / "images"
        images = StyleImages(
            str(shared_images / "content" / f"{content}.jpg"), str(shared_images / "style" / f"{style}.jpg"), size=128
        )
        model = StyleTransfer(arch="vgg16", weights=str(vgg16), preprocessing="caffe")
    else:
        images = StyleImages(photo(content), painting(style), size=128)
        model = StyleTransfer()
    contents = torch.stack([job.content for job in images.jobs])
    model.objective.style_weight = 5.0
    model.objective.set_targets(contents, [job.style for job in images.jobs])
    terms = model.objective(contents)
    expected_content, expected_style, expected_total = STEP_ZERO[(content, style, weights)]
    print(f"{content} x {style} ({weights}) at step 0: style {terms.style.item():,.0f} (reference {expected_style:,})")
    assert terms.content.item() == pytest.approx(expected_content, abs=1e-3)
    assert terms.style.item() == pytest.approx(expected_style, rel=0.02)
    assert terms.total.item() == pytest.approx(expected_total, rel=0.02)


# One L-BFGS iteration per step, as reference.md ran it (torch's default max_iter is 20).
LBFGS = ["--optimizer", "LBFGS", "--optimizer.lr", "1", "--optimizer.max_iter", "1", "--optimizer.history_size", "100"]
ADAM = ["--optimizer", "Adam", "--optimizer.lr", "0.02"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "style", "optimizer", "steps", "expected_total"),
    [
        ("chelsea", "starry_night", LBFGS, 50, 309_382),
        ("coffee", "the_scream", LBFGS, 50, 261_214),
        ("chelsea", "starry_night", ADAM, 200, 271_964),
    ],
)
def test_final_total_is_within_15_percent_of_the_reference(tmp_path, content, style, optimizer, steps, expected_total):
    cli = fit(
        tmp_path,
        *reference_pair(content, style),
        *optimizer,
        "--trainer.max_steps",
        steps,
        "--output.path",
        tmp_path / "out.png",
    )
    with torch.no_grad():
        total = cli.model.objective(cli.model.result()).total.item()
    print(f"{content} x {style}, {optimizer[1]} {steps} steps: total {total:,.0f} (reference {expected_total:,})")
    assert total == pytest.approx(expected_total, rel=0.15)
