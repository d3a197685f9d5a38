"""The `lit-nst` command: LightningCLI wiring and the one place user errors are printed."""

import contextlib
import errno
import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lit_nst.callbacks.checkpoints import AtomicCheckpointIO, RunCheckpoint
from lit_nst.callbacks.interrupt import GracefulInterrupt
from lit_nst.callbacks.notes import RunNote
from lit_nst.callbacks.output import ImageOutput
from lit_nst.callbacks.table import MetricsTable
from lit_nst.data import StyleImages
from lit_nst.errors import UsageError, WriteError, os_error_in
from lit_nst.interrupts import Interrupts
from lit_nst.module import StyleTransfer
from lit_nst.precision import check_precision, default_precision
from lit_nst.progress import StepProgressBar
from lit_nst.resume import run_identity
from lit_nst.run_start import checkpoint_to_resume
from lit_nst.runs import RUNS, RunLock, run_folder, run_name, write_run_record
from lit_nst.usage import plain_message, short_help
from lit_nst.watch import LossWatch

DEFAULTS = Path(__file__).with_name("defaults.yaml")
# A full disk, a quota, a read-only or forbidden file or folder: the user's to fix, in one line.
OS_REFUSALS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class StyleTransferCLI(LightningCLI):
    console_reports = True  # the precision chosen and the metrics table; off where a notebook shows the result
    full_help = False  # `--help` shows every flag (`--help-all`), not lit-nst's own first

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # Only fit: validate, test and predict would mean nothing for an optimisation with no dataset.
        return {"fit": LightningCLI.subcommands()["fit"]}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ImageOutput, "output")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "trainer.log_every_n_steps": 10,
                "trainer.enable_model_summary": False,
                "trainer.precision": None,  # chosen for the device in `_instantiate_trainer`
            }
        )
        if not self.full_help:
            parser.format_help = lambda: short_help(parser)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        callbacks = [*callbacks, GracefulInterrupt(), LossWatch()]
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
        root = Path(self.trainer.default_root_dir)
        made = [folder for folder in [*candidates, root / RUNS, root] if not folder.exists()]
        self.run_lock: RunLock | None = None
        try:
            super()._run_subcommand(subcommand)
        except UsageError:
            if self.run_lock is not None:
                self.run_lock.discard()
            for folder in made:  # the deepest first; only empty ones go
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
        finally:
            if self.run_lock is not None:
                self.run_lock.release()

    def _parse_ckpt_path(self) -> None:
        """Keep the command's settings: LightningCLI would silently replace them by the checkpoint's
        hyperparameters, where a resume of another job must be refused (see `before_fit`)."""

    def before_fit(self) -> None:
        """Apply a coarse-to-fine schedule's step count; give the run its own folder and lock it; resolve
        `--ckpt_path last` to this run's checkpoint and refuse a checkpoint of another job, before any step."""
        if Interrupts.at_start_up:  # a Ctrl-C that an import swallowed (lit_nst.console)
            raise KeyboardInterrupt
        config, data, trainer = self.config_init[self.subcommand], self.datamodule, self.trainer
        max_steps, note = data.schedule.run_length(trainer.max_steps)
        trainer.fit_loop.epoch_loop.max_steps = max_steps
        if note is not None and rank_zero_only.rank == 0:
            print(f"lit-nst: {note}", file=sys.stderr)
        checkpoints = trainer.checkpoint_callback
        identity = run_identity(self.model.hparams, data)
        optimizer = self._optimizer_name(config)
        chosen = checkpoints is not None and checkpoints.dirpath is not None
        if chosen:  # the user's choice of folder
            data.run_folder = Path(checkpoints.dirpath)
        else:
            name, settings = run_name(data.groups), {**identity, "optimizer": optimizer}
            data.run_folder = run_folder(trainer.default_root_dir, name, settings)
        if checkpoints is not None:
            checkpoints.dirpath = str(data.run_folder)
        launcher = rank_zero_only.rank == 0 and trainer.node_rank == 0
        if (checkpoints is not None or data.clip is not None) and launcher:
            # Only the launching process of the first node: the ranks it starts run this command again, inside its run.
            self.run_lock = RunLock(data.run_folder)
            self.run_lock.acquire()
            if not chosen:  # what the run is, for `--ckpt_path last` of a run of the same pictures to compare with
                write_run_record(data.run_folder, {"identity": identity, "optimizer": optimizer})
        if checkpoints is None and config.get("ckpt_path") is not None:
            raise UsageError("--ckpt_path needs checkpoints: drop --trainer.enable_checkpointing false")
        clip_steps = data.schedule.total if data.clip is not None else None
        found = checkpoint_to_resume(
            config.get("ckpt_path"),
            folder=data.run_folder,
            identity=identity,
            optimizer=optimizer,
            others=not chosen,
            max_steps=max_steps,
            clip_steps=clip_steps,
        )
        config["ckpt_path"] = None if found is None else str(found)

    @staticmethod
    def _optimizer_name(config: Any) -> str:
        optimizer = config.get("optimizer")
        if optimizer is None:
            return "JobwiseLBFGS"  # StyleTransfer.configure_optimizers
        class_path = optimizer["class_path"] if isinstance(optimizer, dict) else optimizer.class_path
        return class_path.rsplit(".", 1)[-1]


class FullHelpCLI(StyleTransferCLI):
    """`lit-nst fit --help-all`: jsonargparse's help of every flag, Lightning's Trainer's included."""

    full_help = True


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
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.distributed"):
        logging.getLogger(name).addFilter(RunNote.hold_start_lines)
    quiet_lightning_advertising()
    args = sys.argv[1:]
    if "--help-all" in args:
        args = [("--help" if arg == "--help-all" else arg) for arg in args]
        cli_main(args, cli_class=FullHelpCLI)
        return
    try:
        cli_main()
    except WriteError as error:  # not the user's input: the machine's (status 1, as for other failures)
        fail(str(error), status=1)
    except UsageError as error:
        fail(str(error))
    except MisconfigurationException as error:  # Lightning's refusals of --trainer flags: `accelerator gpu` on a CPU
        fail(f"{' '.join(str(error).split())} (the --trainer flags: lit-nst fit --help-all)")
    except SIGTERMException:
        raise SystemExit(128 + signal.SIGTERM) from None  # the checkpoint callback has said how to resume
    except ArgumentError as error:
        fail(argument_error_message(error))
    except Exception as error:  # an OSError outside our own writes: Lightning's config.yaml and logs, say
        reason = os_error_in(error)
        if reason is None or reason.errno not in OS_REFUSALS:
            raise
        fix = "make room" if reason.errno in (errno.ENOSPC, errno.EDQUOT) else "choose a file or folder you may use"
        fail(f"{reason.filename or 'a file'}: {reason.strerror}; {fix}, then run again", status=1)


def argument_error_message(error: ArgumentError) -> str:
    """jsonargparse's message on one line, with where to look."""
    return f"{plain_message(str(error))} (see lit-nst fit --help)"


def quiet_lightning_advertising() -> None:
    """Drop Lightning's tips to install cloud services and its notice about tensorboardX."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(no_tips)  # a logger keeps one of each filter: added once per process
    warnings.filterwarnings("ignore", message="Starting from v1.9.0, `tensorboardX` has been removed")
    warnings.filterwarnings("ignore", message=".*configure_optimizers` will be overridden by")
    warnings.filterwarnings("ignore", message="`isinstance.treespec, LeafSpec.` is deprecated")
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
    # A run's folder moved or copied elsewhere, or resumed with another --checkpoint.every_n_steps: only
    # ModelCheckpoint's ranking of top-k files (which it does not need) is not carried over.
    warnings.filterwarnings("ignore", message="The dirpath has changed from")
    warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks used to create")
    # `lit_nst.stylize` passes its own args; in a notebook sys.argv holds the kernel's, which mean nothing here.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within Python")
    # Every batch is the same list of job indices (lit_nst.data.RepeatedJobs): a resume mid-"epoch" is exact.
    # A run shorter than --trainer.log_every_n_steps logs its losses only in its bar; its metrics still reach the log.
    warnings.filterwarnings("ignore", message="The number of training batches .* is smaller than the logging interval")
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    # Quality metrics are gathered from every rank before they are logged: the same value everywhere.
    warnings.filterwarnings("ignore", message="It is recommended to use `self.log.'metrics/")


def no_tips(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


def fail(message: str, status: int = 2) -> None:
    # Under DDP every rank runs this command and meets the same error: one line, from rank 0.
    if rank_zero_only.rank == 0:
        print(f"lit-nst: error: {message}", file=sys.stderr)
    raise SystemExit(status)
