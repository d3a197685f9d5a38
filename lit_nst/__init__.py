"""lit-nst: optimisation-based neural style transfer (Gatys et al.) on PyTorch Lightning."""

from lit_nst.api import stylize
from lit_nst.errors import UsageError

__version__ = "0.1.0"
__all__ = ["UsageError", "stylize"]
