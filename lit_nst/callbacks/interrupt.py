"""Ctrl-C and SIGTERM turned into a stop between two steps."""

import signal
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_nst.interrupts import Interrupts
from lit_nst.ranks import any_rank


class GracefulInterrupt(Callback):
    """Turns Ctrl-C and SIGTERM into a stop between two steps, so the checkpoint never holds a half-made step.

    Under DDP every rank stops at the same step, whichever rank the signal reached (a scheduler may signal
    the launcher only): the ranks agree on it at the start of each step. Lightning's own SIGTERM handler is
    replaced for the run, as it broadcasts from inside the handler and hangs a rank waiting in a collective.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: set[int] = set()
        self.previous_handlers: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received.clear()
        Interrupts.run_started = True
        for signum in self.SIGNALS:
            self.previous_handlers[signum] = signal.signal(signum, self._request)

    def _request(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and signum in self.received:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.received.add(signum)
        Interrupts.in_run = Interrupts.in_run or signum == signal.SIGINT

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, index: int) -> None:
        # One small all-reduce a step under DDP; a single process needs no tensor at all.
        interrupt, terminate = any_rank(trainer, *(signum in self.received for signum in self.SIGNALS))
        if terminate:
            raise SIGTERMException
        if interrupt:
            raise KeyboardInterrupt

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)
        self.previous_handlers.clear()
