"""The result's quality printed as a table at the end of a run."""

import lightning as L
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.table import Table


class MetricsTable(Callback):
    """Prints the result's quality at the end of a run: structure kept, style reached, smoothness."""

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # At teardown, after the progress bar has drawn its last line.
        if stage != "fit" or not trainer.is_global_zero or not pl_module.quality:
            return
        jobs = trainer.datamodule.jobs
        table = Table(
            title=f"Result after step {trainer.global_step}",
            caption="SSIM and PSNR against the content photo; style loss on the style layers; total variation",
            title_justify="left",
            caption_justify="left",
        )
        cells = [
            [f"{row['ssim']:.3f}", f"{row['psnr']:.2f}", f"{row['style']:,.1f}", f"{row['tv']:.4f}"]
            for row in pl_module.quality
        ]
        # In a narrow terminal a long job name (a blend's) folds onto more lines; a number is never cut.
        table.add_column("job", overflow="fold")
        for index, column in enumerate(("SSIM", "PSNR (dB)", "style loss", "TV")):
            width = max(len(column), *(len(row[index]) for row in cells))
            table.add_column(column, justify="right", no_wrap=True, min_width=width)
        for row, numbers in zip(pl_module.quality, cells, strict=True):
            table.add_row(jobs[row["job"]].name, *numbers)
        Console(stderr=False).print(table)
