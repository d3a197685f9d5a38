"""The `lit-nst` console script: the short usage without importing torch, and Ctrl-C at any moment ending in one
line and exit status 130, during start-up too.

This module imports nothing heavy, so its handler is in place while torch and Lightning are imported. An import
may swallow the KeyboardInterrupt (torch's check for triton catches everything): the flag set here stops the run
before its first step all the same (`lit_nst.cli.StyleTransferCLI.before_fit`).
"""

import signal
import sys

from lit_nst.interrupts import Interrupts
from lit_nst.usage import USAGE


def _on_interrupt(signum: int, frame: object) -> None:
    Interrupts.at_start_up = True
    raise KeyboardInterrupt


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        from lit_nst import __version__

        print(f"lit-nst {__version__}")
        return
    if args in ([], ["fit"], ["-h"], ["--help"]):  # before torch is imported: at once
        asked = args in (["-h"], ["--help"])
        print(USAGE, end="", file=sys.stdout if asked else sys.stderr)
        if args == ["fit"]:
            print("lit-nst: error: give a photo and a painting: --data.content and --data.style", file=sys.stderr)
        raise SystemExit(0 if asked else 2)
    _reset()
    previous = signal.signal(signal.SIGINT, _on_interrupt)
    try:
        from lit_nst.cli import main as run_command

        run_command()
    except KeyboardInterrupt:
        _say_interrupted_before_the_first_step()
        raise SystemExit(128 + signal.SIGINT) from None
    except SystemExit as ending:
        # Lightning ends an interrupted run with status 1, after the run's checkpoint and picture are written.
        if ending.code == 1 and (Interrupts.at_start_up or Interrupts.in_run):
            _say_interrupted_before_the_first_step()
            raise SystemExit(128 + signal.SIGINT) from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        _reset()  # a later call in this process (lit_nst.stylize, a test) starts clean


def _reset() -> None:
    Interrupts.at_start_up = Interrupts.in_run = Interrupts.run_started = False


def _say_interrupted_before_the_first_step() -> None:
    if not Interrupts.run_started:
        print("lit-nst: interrupted before the first step: nothing was written", file=sys.stderr)
