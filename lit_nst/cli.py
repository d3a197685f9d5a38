"""The `lit-nst` command: LightningCLI wiring and the one place user errors are printed."""

import contextlib
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
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lit_nst.callbacks import ImageOutput, MetricsTable, RunNote
from lit_nst.checkpointing import AtomicCheckpointIO, GracefulInterrupt, RunCheckpoint
from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.module import StyleTransfer
from lit_nst.precision import check_precision, default_precision
from lit_nst.progress import StepProgressBar
from lit_nst.resume import check_same_job, read_checkpoint_record

DEFAULTS = Path(__file__).with_name("defaults.yaml")
DEFAULT_MAX_STEPS = 500  # a single-scale run's length when --trainer.max_steps is not given


class StyleTransferCLI(LightningCLI):
    console_reports = True  # the precision chosen and the metrics table; off where a notebook shows the result

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ImageOutput, "output")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "trainer.log_every_n_steps": 1,
                "trainer.enable_model_summary": False,
                "trainer.precision": None,  # chosen for the device in `_instantiate_trainer`
            }
        )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        callbacks = [*callbacks, GracefulInterrupt()]
        if config.get("enable_checkpointing") is False:  # no checkpoint at all: not even last.ckpt
            callbacks = [callback for callback in callbacks if not isinstance(callback, RunCheckpoint)]
        # The rich bar is our default, but only where the user has not turned progress bars off.
        if config.get("enable_progress_bar") is not False:
            callbacks.append(StepProgressBar())
        if self.console_reports:
            callbacks.append(MetricsTable())  # after the bar, so the table comes after its last line
        if not config.get("plugins"):
            config["plugins"] = [AtomicCheckpointIO()]
        # Before the Trainer exists, so that a refusal is the only line printed.
        settings = self.config[self.subcommand] if self.subcommand else self.config
        check_precision(str(config.get("precision")), self._optimizer_name(settings) in ("LBFGS", "JobwiseLBFGS"))
        note = None
        if config.get("precision") is None:
            config["precision"], why = default_precision(config.get("accelerator", "auto"), config.get("strategy"))
            note = f"precision {config['precision']}: {why} (--trainer.precision to choose)"
        if self.console_reports:
            callbacks.append(RunNote(note))
        return super()._instantiate_trainer(config, callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        # Lightning makes the logger's version folder as fit starts, before the callbacks' checks in `setup`: a run
        # they refuse would leave it behind, empty.
        log_dir = Path(self.trainer.log_dir) if self.trainer.log_dir else None
        candidates = [log_dir, log_dir.parent] if log_dir else []
        made = [folder for folder in [*candidates, Path(self.trainer.default_root_dir)] if not folder.exists()]
        try:
            super()._run_subcommand(subcommand)
        except UsageError:
            for folder in made:  # the deepest first; only empty ones go
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise

    def _parse_ckpt_path(self) -> None:
        """Keep the command's settings: LightningCLI would silently replace them by the checkpoint's
        hyperparameters, where a resume of another job must be refused (see `before_fit`)."""

    def before_fit(self) -> None:
        """Apply a coarse-to-fine schedule's step count; resolve `--ckpt_path last` to our fixed file and refuse
        a checkpoint of another job, before any step."""
        config = self.config_init[self.subcommand]
        self.trainer.fit_loop.epoch_loop.max_steps = self._max_steps(self.trainer.max_steps)
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            return
        if self.trainer.checkpoint_callback is None:
            raise UsageError("--ckpt_path needs checkpoints: drop --trainer.enable_checkpointing false")
        if ckpt_path == "last":
            last = self.trainer.checkpoint_callback.last_path(self.trainer)
            if not last.is_file():
                if rank_zero_only.rank == 0:
                    print(f"lit-nst: no checkpoint at {last} yet: starting fresh", file=sys.stderr)
                config["ckpt_path"] = None
                return
            config["ckpt_path"] = ckpt_path = str(last)
        path = Path(ckpt_path)
        record = read_checkpoint_record(path)
        identity = {**self.model.identity(self.datamodule.clip is not None), **self.datamodule.identity()}
        check_same_job(path, record, identity, self._optimizer_name(config))
        if 0 < self.trainer.max_steps <= record["global_step"] and rank_zero_only.rank == 0:
            unfinished_clip = self.datamodule.clip is not None and record["global_step"] < sum(self.datamodule.steps)
            then = (
                f"raise it (the clip takes {sum(self.datamodule.steps)} steps) to paint on"
                if unfinished_clip
                else "rewriting the output image"
            )
            print(
                f"lit-nst: {path} is already at step {record['global_step']} of --trainer.max_steps "
                f"{self.trainer.max_steps}: {then}",
                file=sys.stderr,
            )

    def _max_steps(self, asked: int) -> int:
        """The run's length: a coarse-to-fine schedule's sum of steps, else `DEFAULT_MAX_STEPS`; an explicit
        --trainer.max_steps (Lightning's -1 means unset) stops earlier, and says so where it cuts a schedule."""
        scheduled = sum(self.datamodule.steps)
        if asked < 0:
            return scheduled or DEFAULT_MAX_STEPS
        if scheduled and asked != scheduled:
            what = "stops the schedule early" if asked < scheduled else "is beyond the schedule's end"
            if rank_zero_only.rank == 0:
                schedule = (
                    "the clip (--data.steps, then --data.frame_steps a frame)"
                    if self.datamodule.clip
                    else f"the schedule --data.steps {self.datamodule.steps}"
                )
                print(
                    f"lit-nst: --trainer.max_steps {asked} {what}: {schedule}"
                    f" takes {scheduled} steps; the run stops at step {min(asked, scheduled)}"
                    f"{' (resume with --ckpt_path last)' if asked < scheduled else ''}",
                    file=sys.stderr,
                )
            return min(asked, scheduled)
        return asked

    @staticmethod
    def _optimizer_name(config: Any) -> str:
        optimizer = config.get("optimizer")
        if optimizer is None:
            return "JobwiseLBFGS"  # StyleTransfer.configure_optimizers
        class_path = optimizer["class_path"] if isinstance(optimizer, dict) else optimizer.class_path
        return class_path.rsplit(".", 1)[-1]


def cli_main(
    args: list[str] | None = None, run: bool = True, cli_class: type[StyleTransferCLI] = StyleTransferCLI
) -> StyleTransferCLI:
    """LightningCLI over lit-nst; `args` as on the command line (tests pass a list)."""
    defaults = {"default_config_files": [str(DEFAULTS)]}
    return cli_class(
        StyleTransfer,
        StyleImages,
        args=args,
        run=run,
        # Our data module hands each rank its own jobs; Lightning's sampler would shard the steps instead.
        trainer_defaults={"num_sanity_val_steps": 0, "use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        # JobwiseLBFGS named as the optimizer in a default config, so `--optimizer.lr 0.5` alone sets its rate.
        parser_kwargs={"exit_on_error": False, **({"fit": defaults} if run else defaults)},
    )


def main() -> None:
    # The seed is part of the saved config; a log line about it is noise in front of an error message.
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    # Lines held from an earlier command in this process (a notebook's, a refused run's) are not this run's.
    RunNote.held.clear()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(RunNote.hold_start_lines)
    quiet_lightning_advertising()
    try:
        cli_main()
    except UsageError as error:
        fail(str(error))
    except SIGTERMException:
        raise SystemExit(128 + signal.SIGTERM) from None  # the checkpoint callback has said how to resume
    except ArgumentError as error:
        fail(argument_error_message(error))


def argument_error_message(error: ArgumentError) -> str:
    """jsonargparse's message on one line, with where to look."""
    return f"{' '.join(str(error).split())} (see lit-nst fit --help)"


def quiet_lightning_advertising() -> None:
    """Drop Lightning's tips to install cloud services and its notice about tensorboardX."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(no_tips)  # a logger keeps one of each filter: added once per process
    warnings.filterwarnings("ignore", message="Starting from v1.9.0, `tensorboardX` has been removed")
    warnings.filterwarnings("ignore", message=".*configure_optimizers` will be overridden by")
    warnings.filterwarnings("ignore", message="`isinstance.treespec, LeafSpec.` is deprecated")
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
    # `lit_nst.stylize` passes its own args; in a notebook sys.argv holds the kernel's, which mean nothing here.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within Python")
    # Every batch is the same list of job indices (lit_nst.data.RepeatedJobs): a resume mid-"epoch" is exact.
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    # Quality metrics are gathered from every rank before they are logged: the same value everywhere.
    warnings.filterwarnings("ignore", message="It is recommended to use `self.log.'metrics/")


def no_tips(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


def fail(message: str) -> None:
    # Under DDP every rank runs this command and meets the same error: one line, from rank 0.
    if rank_zero_only.rank == 0:
        print(f"lit-nst: error: {message}", file=sys.stderr)
    raise SystemExit(2)
