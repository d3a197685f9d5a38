"""The `lit-nst` console script: Ctrl-C at any moment ends in one line and exit status 130, during start-up too.

This module imports nothing heavy, so its handler is in place while torch and Lightning are imported. An import
may swallow the KeyboardInterrupt (torch's check for triton catches everything): the flag set here stops the run
before its first step all the same (`lit_nst.cli.StyleTransferCLI.before_fit`).
"""

import signal
import sys


class Interrupts:
    """What the handlers have seen, for the exit status and the last line."""

    received = False  # Ctrl-C, by this module's handler or by the run's (lit_nst.checkpointing.GracefulInterrupt)
    run_started = False  # the first step has begun: an interruption from here on is the run's to report


def _on_interrupt(signum: int, frame: object) -> None:
    Interrupts.received = True
    raise KeyboardInterrupt


def main() -> None:
    Interrupts.received = Interrupts.run_started = False
    previous = signal.signal(signal.SIGINT, _on_interrupt)
    try:
        from lit_nst.cli import main as run_command

        run_command()
    except KeyboardInterrupt:
        if not Interrupts.run_started:
            print("lit-nst: interrupted before the first step: nothing was written", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None
    except SystemExit as exit:
        # Lightning ends an interrupted run with status 1, after the checkpoint and the picture are written.
        if exit.code == 1 and Interrupts.received:
            raise SystemExit(128 + signal.SIGINT) from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
