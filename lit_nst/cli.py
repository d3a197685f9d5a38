"""The `lit-nst` command: LightningCLI wiring and the one place user errors are printed."""

import sys
from typing import Any

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
        parser.set_defaults({"trainer.max_steps": 500, "trainer.log_every_n_steps": 1})

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        # The rich bar is our default, but only where the user has not turned progress bars off.
        if config.get("enable_progress_bar") is not False:
            callbacks = [*callbacks, StepProgressBar()]
        return super()._instantiate_trainer(config, callbacks)


def cli_main(args: list[str] | None = None) -> StyleTransferCLI:
    return StyleTransferCLI(
        StyleTransfer,
        StyleImages,
        args=args,
        trainer_defaults={"num_sanity_val_steps": 0},
        save_config_kwargs={"overwrite": True},
    )


def main() -> None:
    try:
        cli_main()
    except UsageError as error:
        print(f"lit-nst: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
