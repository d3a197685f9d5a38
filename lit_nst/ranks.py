"""Every rank agrees: a decision that one process takes alone would leave the others waiting in a collective; and
one rank speaks for all."""

import sys

import lightning as L
import torch


def any_rank(trainer: L.Trainer, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true on every rank where it is true on any: one small all-reduce, none without DDP."""
    if trainer.world_size == 1:
        return flags
    device = trainer.lightning_module.device
    summed = trainer.strategy.reduce(torch.tensor(flags, dtype=torch.int32, device=device), reduce_op="sum")
    return tuple(bool(count) for count in summed.tolist())


def say(trainer: L.Trainer, message: str | None, prefix: str = "") -> None:
    """A line on stderr from rank 0, where there is something to say."""
    if message is not None and trainer.is_global_zero:
        print(f"lit-nst: {prefix}{message}", file=sys.stderr)
