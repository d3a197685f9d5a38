"""How good a result is, in numbers: structure kept from the content, style reached, smoothness."""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lit_nst.objective.objective import LossTerms

METRICS = ("ssim", "psnr", "style", "tv")  # the measures of each row, in table order


def quality_metrics(
    objective: Callable[[Sequence[Tensor], Tensor], LossTerms],
    results: Sequence[Tensor],
    contents: Sequence[Tensor],
    job_ids: Tensor,
) -> list[dict]:
    """One row per job of `job_ids`: SSIM and PSNR against the content, the unweighted style loss, total variation.

    `objective` is the StyleObjective, or how the run evaluates it (lit_nst.objective.tiling).

    `results` and `contents` hold every job's (3, h, w) image, in job order.
    """
    terms = objective(results, job_ids)
    rows = []
    for row, job in enumerate(job_ids.tolist()):
        result, content = results[job][None].float(), contents[job][None].float()
        rows.append(
            {
                "job": job,
                "ssim": structural_similarity(result, content),
                "psnr": peak_signal_noise_ratio(result, content, data_range=1.0).item(),
                "style": terms.style[row].item(),
                "tv": terms.tv[row].item(),
            }
        )
    return rows


SSIM_MARGIN = 5  # rows beyond its own that torchmetrics' 11-px Gaussian window (sigma 1.5) reads at each edge
SSIM_STRIP_PIXELS = 2**20  # pixels of one strip of rows: about 0.4 GiB of SSIM's temporaries


def structural_similarity(result: Tensor, content: Tensor) -> float:
    """torchmetrics' SSIM of two (1, 3, H, W) images in [0, 1], taken in strips of rows: whole, its temporaries
    take about 18 copies of the image (4.2 GiB at 4096x2725, more than a tiled print's steps). Each strip is read
    with the window's margin of rows on both sides and only its own rows of the SSIM map are kept: the whole
    image's values there, so their sum over the strips is the whole map's."""
    with torch.autocast(result.device.type, enabled=False):  # a bf16 run's autocast would cost SSIM 0.09
        return _structural_similarity(result.float(), content.float())


def _structural_similarity(result: Tensor, content: Tensor) -> float:
    height, width = result.shape[-2:]
    rows = max(1, SSIM_STRIP_PIXELS // width)
    total = 0.0
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        first, end = max(0, top - SSIM_MARGIN), min(height, bottom + SSIM_MARGIN)
        _, ssim_map = structural_similarity_index_measure(
            result[..., first:end, :], content[..., first:end, :], data_range=1.0, return_full_image=True
        )
        total += ssim_map[..., top - first : bottom - first, :].double().sum().item()
    return total / result[0].numel()


def metrics_table(rows: list[dict], jobs: int, device: torch.device) -> Tensor:
    """(jobs, len(METRICS)) table with `rows` filled in and zeros elsewhere, ready to be summed over ranks."""
    table = torch.zeros(jobs, len(METRICS), device=device)
    for row in rows:
        table[row["job"]] = torch.tensor([row[key] for key in METRICS])
    return table


def table_rows(table: Tensor) -> list[dict]:
    """A full table back into one row per job."""
    return [{"job": job, **dict(zip(METRICS, values, strict=True))} for job, values in enumerate(table.tolist())]


def logged_metrics(table: Tensor, names: list[str]) -> dict[str, Tensor]:
    """The table as logged: each measure's mean over the jobs, and with several jobs, each job's own."""
    logged = {}
    for column, key in enumerate(METRICS):
        logged[f"metrics/{key}"] = table[:, column].mean()
        for job, name in enumerate(names if len(names) > 1 else []):
            logged[f"metrics/{key}/{name}"] = table[job, column]
    return logged
