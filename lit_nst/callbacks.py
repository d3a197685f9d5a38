"""What happens around the steps: writing the result image and its snapshots."""

import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from rich.console import Console
from rich.table import Table

from lit_nst.checkpointing import INTERRUPTIONS
from lit_nst.errors import UsageError
from lit_nst.images import check_writable, check_writable_folder, labelled_panel, save_image


class ImageOutput(Callback):
    """Writes each job's result image at the end of the run, and snapshots every N steps."""

    def __init__(
        self, path: str | None = None, dir: str | None = None, every_n_steps: int = 0, panel: bool = False
    ) -> None:
        """
        Args:
            path: the result image of a single job; by default `stylized.png` in the run's log directory.
            dir: the folder for the results of several jobs, each named `<content>__<style>.png`.
            every_n_steps: also write `<name>_step<N>.png` snapshots every N steps (0: never).
            panel: also write `<name>_panel.png`: content | style | result side by side, labelled.
        """
        if every_n_steps < 0:
            raise UsageError(f"--output.every_n_steps must be 0 (off) or positive, got {every_n_steps}")
        if path is not None and dir is not None:
            raise UsageError("give --output.path (one job) or --output.dir (several jobs), not both")
        # Checked now, before the trainer starts, so a bad path fails before the first step.
        if path is not None:
            check_writable(Path(path))
        if dir is not None:
            check_writable_folder(Path(dir))
        self.path = path
        self.dir = dir
        self.every_n_steps = every_n_steps
        self.panel = panel
        self.paths: list[Path] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        jobs = trainer.datamodule.jobs
        if self.path is not None:
            if len(jobs) > 1:
                raise UsageError(f"{len(jobs)} jobs need --output.dir, not --output.path")
            self.paths = [Path(self.path)]
        else:
            folder = Path(self.dir) if self.dir is not None else Path(trainer.log_dir or ".")
            names = ["stylized"] if len(jobs) == 1 and self.dir is None else [job.name for job in jobs]
            self.paths = [folder / f"{name}.png" for name in names]
        if trainer.is_global_zero:
            for path in self.paths:
                check_writable(path)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and trainer.is_global_zero:
            for path, image in zip(self.paths, pl_module.result(), strict=True):
                save_image(image, path.with_name(f"{path.stem}_step{step:05d}{path.suffix}"))
                log_snapshot(trainer, path.stem, image, step)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_fit_end, not on_train_end: a resume of a finished run skips training but still rewrites the image.
        self.write(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Only interruptions: after a divergence the image of the last good step must stay as it is.
        if isinstance(exception, INTERRUPTIONS):
            self.write(trainer, pl_module)

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        jobs = trainer.datamodule.jobs
        for path, image, job in zip(self.paths, pl_module.result(), jobs, strict=True):
            save_image(image, path)
            if self.panel:
                styles = [("style", job.styles[0])] if len(job.styles) == 1 else [
                    (f"style {index}", style) for index, style in enumerate(job.styles, 1)]  # fmt: skip
                pictures = [("content", job.content), *styles, ("result", image)]
                save_image(labelled_panel(pictures, image.shape[-2]), path.with_name(f"{path.stem}_panel.png"))


def log_snapshot(trainer: L.Trainer, name: str, image, step: int) -> None:
    """Show the forming picture where the metrics are: TensorBoard's image tab, or files beside the CSV."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(f"snapshot/{name}", image.clamp(0, 1), step)
        elif logger.log_dir is not None:
            save_image(image, Path(logger.log_dir) / "images" / f"{name}_step{step:05d}.png")


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
        table.add_column("job", no_wrap=True)
        for column in ("SSIM", "PSNR (dB)", "style loss", "TV"):
            table.add_column(column, justify="right")
        for row in pl_module.quality:
            table.add_row(
                jobs[row["job"]].name,
                f"{row['ssim']:.3f}",
                f"{row['psnr']:.2f}",
                f"{row['style']:,.1f}",
                f"{row['tv']:.4f}",
            )
        Console(stderr=False).print(table)


class RunNote(Callback):
    """Lines on stderr as the first step starts, after every check, so a refused run prints its error alone: the
    precision, when the CLI chose it, and how the objective is evaluated, when in blocks (lit_nst.tiling)."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        walk = getattr(pl_module, "block_walk", None)
        tiling = walk.describe([job.shape for job in trainer.datamodule.jobs]) if walk is not None else None
        for message in (self.message, tiling):
            if message is not None and trainer.is_global_zero:
                print(f"lit-nst: {message}", file=sys.stderr)
