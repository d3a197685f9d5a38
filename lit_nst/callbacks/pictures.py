"""Writing a run's pictures: each job's result, its snapshots and its labelled panel."""

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from lit_nst.callbacks.writer import Writer
from lit_nst.errors import UsageError
from lit_nst.images import check_writable, labelled_panel, save_image
from lit_nst.video.files import WRITABLE_SUFFIXES


class PictureWriter(Writer):
    """Each job's picture: at `path` (one job), in `dir` as `<content>__<style>.png`, or `stylized.png` in the log
    directory; snapshots every `every_n_steps`; a `panel` beside each."""

    def __init__(self, path: str | None, dir: str | None, every_n_steps: int, panel: bool, trainer: L.Trainer) -> None:
        jobs = trainer.datamodule.jobs
        if path is not None and Path(path).suffix.lower() in WRITABLE_SUFFIXES[:-1]:
            raise UsageError(
                f"--output.path {path} is a video file, and the content a picture: give an image "
                "file name such as stylized.png"
            )
        if path is not None:
            if len(jobs) > 1:
                raise UsageError(f"{len(jobs)} jobs need --output.dir, not --output.path")
            self.paths = [Path(path)]
        else:
            folder = Path(dir) if dir is not None else Path(trainer.log_dir or ".")
            names = ["stylized"] if len(jobs) == 1 and dir is None else [job.name for job in jobs]
            self.paths = [folder / f"{name}.png" for name in names]
        if trainer.is_global_zero:
            for picture in self.paths:
                check_writable(picture)
        self.every_n_steps = every_n_steps
        self.panel = panel

    def after_step(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and trainer.is_global_zero:
            for path, image in zip(self.paths, pl_module.result(), strict=True):
                save_image(image, path.with_name(f"{path.stem}_step{step:05d}{path.suffix}"))
                log_snapshot(trainer, path.stem, image, step)

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        """Every job's picture (and panel), from rank 0, which holds them all; what was written, in one line."""
        if not trainer.is_global_zero:
            return None
        for path, image, job in zip(self.paths, pl_module.result(), trainer.datamodule.jobs, strict=True):
            save_image(image, path)
            if self.panel:
                styles = (
                    [("style", job.styles[0])]
                    if len(job.styles) == 1
                    else [(f"style {index}", style) for index, style in enumerate(job.styles, 1)]
                )
                pictures = [("content", job.content), *styles, ("result", image)]
                save_image(labelled_panel(pictures, image.shape[-2]), path.with_name(f"{path.stem}_panel.png"))
        return written(self.paths, self.panel)


def written(paths: list[Path], panel: bool) -> str:
    """What a run wrote, in one line: the picture, or how many and where (the first few by name)."""
    beside = "" if not panel else ", and its _panel.png beside it" if len(paths) == 1 else ", each with its _panel.png"
    if len(paths) == 1:
        return f"wrote {paths[0]}{beside}"
    names = ", ".join(path.name for path in paths[:3]) + (", ..." if len(paths) > 3 else "")
    return f"wrote {len(paths)} pictures in {paths[0].parent}: {names}{beside}"


def log_snapshot(trainer: L.Trainer, name: str, image: Tensor, step: int) -> None:
    """Show the forming picture where the metrics are: TensorBoard's image tab, or files beside the CSV."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(f"snapshot/{name}", image.clamp(0, 1), step)
        elif logger.log_dir is not None:
            save_image(image, Path(logger.log_dir) / "images" / f"{name}_step{step:05d}.png")
