"""What the `--output` group (lit_nst.callbacks.output) asks of a writer of pictures or of a clip."""

import lightning as L


class Writer:
    """Hooks a writer may fill; `paths` are where it writes, `write` writes and says what it wrote."""

    paths: list

    def start(self, trainer: L.Trainer) -> None:
        """At the first step of a run, fresh or resumed."""

    def before_step(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Before each step, ahead of the module's own hook (which may move to the next stage)."""

    def after_step(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After each step."""

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        """Write what the run has made; one line saying what, or None where nothing was written."""
        raise NotImplementedError
