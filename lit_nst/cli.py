"""The `lit-nst` command: LightningCLI wiring and the one place user errors are printed."""

import logging
import sys
import warnings
from typing import Any

from jsonargparse import ArgumentError
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lit_nst.callbacks import ImageOutput
from lit_nst.data import StyleImages
from lit_nst.errors import UsageError
from lit_nst.module import StyleTransfer
from lit_nst.progress import StepProgressBar


class StyleTransferCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ImageOutput, "output")
        parser.set_defaults(
            {"trainer.max_steps": 500, "trainer.log_every_n_steps": 1, "trainer.enable_model_summary": False}
        )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        # The rich bar is our default, but only where the user has not turned progress bars off.
        if config.get("enable_progress_bar") is not False:
            callbacks = [*callbacks, StepProgressBar()]
        return super()._instantiate_trainer(config, callbacks)


def cli_main(args: list[str] | None = None, run: bool = True) -> StyleTransferCLI:
    """LightningCLI over lit-nst; `args` as on the command line (tests pass a list)."""
    return StyleTransferCLI(
        StyleTransfer,
        StyleImages,
        args=args,
        run=run,
        trainer_defaults={"num_sanity_val_steps": 0},
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
    except ArgumentError as error:
        fail(f"{' '.join(str(error).split())} (see lit-nst fit --help)")


def quiet_lightning_advertising() -> None:
    """Drop Lightning's tips to install cloud services and its notice about tensorboardX."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: not str(record.msg).startswith("💡 Tip"))
    warnings.filterwarnings("ignore", message="Starting from v1.9.0, `tensorboardX` has been removed")


def fail(message: str) -> None:
    print(f"lit-nst: error: {message}", file=sys.stderr)
    raise SystemExit(2)
