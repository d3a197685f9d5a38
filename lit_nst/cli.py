"""The `lit-nst` command: LightningCLI wiring and the one place user errors are printed."""

import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_nst.callbacks import ImageOutput, MetricsTable
from lit_nst.checkpointing import AtomicCheckpointIO, GracefulInterrupt, RunCheckpoint
from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.module import StyleTransfer
from lit_nst.progress import StepProgressBar
from lit_nst.resume import check_same_job, read_checkpoint_record

DEFAULT_MAX_STEPS = 500


class StyleTransferCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ImageOutput, "output")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "trainer.max_steps": DEFAULT_MAX_STEPS,
                "trainer.log_every_n_steps": 1,
                "trainer.enable_model_summary": False,
            }
        )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        callbacks = [*callbacks, GracefulInterrupt()]
        # The rich bar is our default, but only where the user has not turned progress bars off.
        if config.get("enable_progress_bar") is not False:
            callbacks.append(StepProgressBar())
        callbacks.append(MetricsTable())  # after the bar, so the table comes after its last line
        if not config.get("plugins"):
            config["plugins"] = [AtomicCheckpointIO()]
        return super()._instantiate_trainer(config, callbacks)

    def _parse_ckpt_path(self) -> None:
        """Keep the command's settings: LightningCLI would silently replace them by the checkpoint's
        hyperparameters, where a resume of another job must be refused (see `before_fit`)."""

    def before_fit(self) -> None:
        """Apply a coarse-to-fine schedule's step count; resolve `--ckpt_path last` to our fixed file and refuse
        a checkpoint of another job, before any step."""
        config = self.config_init[self.subcommand]
        if self.datamodule.steps:
            # A coarse-to-fine schedule says how many steps the run takes; a smaller explicit
            # --trainer.max_steps stops it early (to be resumed later).
            total, asked = sum(self.datamodule.steps), self.trainer.max_steps
            if asked in (DEFAULT_MAX_STEPS, -1) or asked > total:
                self.trainer.fit_loop.epoch_loop.max_steps = total
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            return
        if ckpt_path == "last":
            last = self.trainer.checkpoint_callback.last_path(self.trainer)
            if not last.is_file():
                print(f"lit-nst: no checkpoint at {last} yet: starting fresh", file=sys.stderr)
                config["ckpt_path"] = None
                return
            config["ckpt_path"] = ckpt_path = str(last)
        path = Path(ckpt_path)
        record = read_checkpoint_record(path)
        identity = {**self.model.identity(), **self.datamodule.identity()}
        check_same_job(path, record, identity, self._optimizer_name(config))
        if 0 < self.trainer.max_steps <= record["global_step"]:
            print(
                f"lit-nst: {path} is already at step {record['global_step']} of --trainer.max_steps "
                f"{self.trainer.max_steps}: rewriting the output image",
                file=sys.stderr,
            )

    @staticmethod
    def _optimizer_name(config: Any) -> str:
        optimizer = config.get("optimizer")
        if optimizer is None:
            return "JobwiseLBFGS"  # StyleTransfer.configure_optimizers
        class_path = optimizer["class_path"] if isinstance(optimizer, dict) else optimizer.class_path
        return class_path.rsplit(".", 1)[-1]


def cli_main(args: list[str] | None = None, run: bool = True) -> StyleTransferCLI:
    """LightningCLI over lit-nst; `args` as on the command line (tests pass a list)."""
    return StyleTransferCLI(
        StyleTransfer,
        StyleImages,
        args=args,
        run=run,
        # Our data module hands each rank its own jobs; Lightning's sampler would shard the steps instead.
        trainer_defaults={"num_sanity_val_steps": 0, "use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        parser_kwargs={"exit_on_error": False},
    )


def main() -> None:
    # The seed is part of the saved config; a log line about it is noise in front of an error message.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    quiet_lightning_advertising()
    try:
        cli_main()
    except UsageError as error:
        fail(str(error))
    except SIGTERMException:
        raise SystemExit(128 + signal.SIGTERM) from None  # the checkpoint callback has said how to resume
    except ArgumentError as error:
        fail(f"{' '.join(str(error).split())} (see lit-nst fit --help)")


def quiet_lightning_advertising() -> None:
    """Drop Lightning's tips to install cloud services and its notice about tensorboardX."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: not str(record.msg).startswith("💡 Tip"))
    warnings.filterwarnings("ignore", message="Starting from v1.9.0, `tensorboardX` has been removed")
    warnings.filterwarnings("ignore", message=".*configure_optimizers` will be overridden by")
    warnings.filterwarnings("ignore", message="`isinstance.treespec, LeafSpec.` is deprecated")
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")


def fail(message: str) -> None:
    print(f"lit-nst: error: {message}", file=sys.stderr)
    raise SystemExit(2)
