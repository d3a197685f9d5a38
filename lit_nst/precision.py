"""The precision a run takes when `--trainer.precision` is not given: bf16-mixed where the device pays it back.

The image, style statistics and losses stay float32 or better whatever the precision (lit_nst.objective.statistics,
lit_nst.objective.losses); the VGG's convolutions, and so its activations, run in bfloat16. An explicit
`--trainer.precision` always wins.
"""

import os
import platform
from pathlib import Path

import torch

from lit_nst.errors import UsageError

FLOAT32 = "32-true"
BF16_MIXED = "bf16-mixed"

# CPU flags (as /proc/cpuinfo names them) of native bfloat16 arithmetic: x86's AVX512-BF16 and AMX, Arm's BF16.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


# Lightning's short names for the mixed and true precisions.
ALIASES = {"bf16": BF16_MIXED, "16": "16-mixed", "32": FLOAT32, "64": "64-true"}
# Strategies that fork after the Trainer is built: CUDA must not be initialised before them.
FORKING_STRATEGIES = ("ddp_fork", "ddp_notebook", "ddp_fork_find_unused_parameters_false")


def default_precision(accelerator: object, strategy: object = "auto") -> tuple[str, str]:
    """(precision, why) for a run on `accelerator` (the Trainer's setting: "auto", "cpu", "gpu", "cuda", ...)."""
    name = accelerator if isinstance(accelerator, str) else type(accelerator).__name__.lower()
    if name in ("auto", "gpu", "cuda", "cudaaccelerator") and torch.cuda.is_available():
        if strategy in FORKING_STRATEGIES:  # reading the capability would initialise CUDA before the fork
            return (
                FLOAT32,
                f"--trainer.strategy {strategy} forks, so the GPU is not asked (bf16-mixed on Ampere or newer)",
            )
        major, minor = torch.cuda.get_device_capability()
        if major >= 8:
            return BF16_MIXED, f"this GPU (compute capability {major}.{minor}) runs bfloat16 natively"
        return FLOAT32, f"this GPU (compute capability {major}.{minor}) has no native bfloat16"
    if name in ("auto", "cpu", "cpuaccelerator") and not (name == "auto" and torch.backends.mps.is_available()):
        return cpu_precision(cpu_flags())
    return FLOAT32, f"no bfloat16 default for accelerator {name!r}"


def cpu_precision(flags: set[str]) -> tuple[str, str]:
    """The CPU's default: bf16-mixed only with native bfloat16 arithmetic.

    Without it oneDNN emulates bfloat16, many times slower than float32 (BENCHMARKS.md, "Precision").
    """
    native = sorted(flag for flag in NATIVE_BF16_CPU_FLAGS if flag in flags)
    if native and torch.backends.mkldnn.is_available():
        return BF16_MIXED, f"this CPU runs bfloat16 natively ({', '.join(native)})"
    return FLOAT32, f"this CPU ({platform.machine() or 'unknown'}) has no native bfloat16 (AVX512-BF16, AMX or BF16)"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 `flags`, Arm `Features`), empty where /proc/cpuinfo is not there.

    LIT_NST_CPUINFO names another file to read in its place: the tests take one machine's answer on every machine."""
    cpuinfo = Path(os.environ.get("LIT_NST_CPUINFO") or "/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def check_precision(precision: str, quasi_newton: bool) -> None:
    """Refuse, in one line, the precisions that cannot optimise an image."""
    precision = ALIASES.get(precision, precision)
    if precision in ("bf16-true", "16-true"):
        raise UsageError(
            f"--trainer.precision {precision} would hold the image itself in 16 bits, too coarse for the small steps "
            f"that finish a picture: use {BF16_MIXED} (the network in 16 bits, the image, Grams and losses in 32)"
        )
    if precision == "16-mixed" and quasi_newton:
        raise UsageError(
            "--trainer.precision 16-mixed scales the loss with a gradient scaler that cannot drive L-BFGS: "
            f"use {BF16_MIXED}, or a first-order optimizer (--optimizer Adam)"
        )
