"""What the Ctrl-C handlers have seen, shared by the console script and the run's own handler; imports nothing."""


class Interrupts:
    """What the handlers have seen, for the exit status and the last line; reset as each command starts."""

    at_start_up = False  # Ctrl-C before the run's own handler took over (lit_nst.callbacks.interrupt)
    in_run = False  # Ctrl-C seen by the run's own handler
    run_started = False  # the first step has begun: an interruption from here on is the run's to report
