"""How good a result is, in numbers: structure kept from the content, style reached, smoothness."""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lit_nst.objective import LossTerms

METRICS = ("ssim", "psnr", "style", "tv")  # the measures of each row, in table order


def quality_metrics(
    objective: Callable[[Sequence[Tensor], Tensor], LossTerms],
    results: Sequence[Tensor],
    contents: Sequence[Tensor],
    job_ids: Tensor,
) -> list[dict]:
    """One row per job of `job_ids`: SSIM and PSNR against the content, the unweighted style loss, total variation.

    `objective` is the StyleObjective, or how the run evaluates it (lit_nst.tiling).

    `results` and `contents` hold every job's (3, h, w) image, in job order.
    """
    terms = objective(results, job_ids)
    rows = []
    for row, job in enumerate(job_ids.tolist()):
        result, content = results[job][None].float(), contents[job][None].float()
        rows.append(
            {
                "job": job,
                "ssim": structural_similarity_index_measure(result, content, data_range=1.0).item(),
                "psnr": peak_signal_noise_ratio(result, content, data_range=1.0).item(),
                "style": terms.style[row].item(),
                "tv": terms.tv[row].item(),
            }
        )
    return rows


def metrics_table(rows: list[dict], jobs: int, device: torch.device) -> Tensor:
    """(jobs, len(METRICS)) table with `rows` filled in and zeros elsewhere, ready to be summed over ranks."""
    table = torch.zeros(jobs, len(METRICS), device=device)
    for row in rows:
        table[row["job"]] = torch.tensor([row[key] for key in METRICS])
    return table


def table_rows(table: Tensor) -> list[dict]:
    """A full table back into one row per job."""
    return [{"job": job, **dict(zip(METRICS, values, strict=True))} for job, values in enumerate(table.tolist())]
