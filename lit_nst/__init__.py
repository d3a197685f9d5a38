"""lit-nst: optimisation-based neural style transfer (Gatys et al.) on PyTorch Lightning."""

from lit_nst.errors import UsageError

__version__ = "0.1.0"
__all__ = ["UsageError", "stylize"]


def __getattr__(name: str) -> object:
    # `stylize` is imported on first use: the console script (lit_nst.console) starts without torch.
    if name == "stylize":
        from lit_nst.api import stylize

        return stylize
    raise AttributeError(f"module 'lit_nst' has no attribute {name!r}")
