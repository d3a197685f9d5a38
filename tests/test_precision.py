"""The precision a run takes by default, and the ones refused (issue: first contact, review findings)."""

import logging

import pytest

from lit_nst.callbacks.notes import RunNote, device_note
from lit_nst.errors import UsageError
from lit_nst.precision import check_precision, cpu_precision, default_precision

from .helpers import fit, job, run_main


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16-mixed"),
        ({"avx2", "amx_bf16", "amx_tile"}, "bf16-mixed"),
        ({"fp", "asimd", "bf16"}, "bf16-mixed"),  # Arm's BF16
        ({"avx2", "fma"}, "32-true"),  # measured: emulated bfloat16 is 38x slower at 64 px
        (set(), "32-true"),
    ],
)
def test_the_cpu_default_is_bf16_mixed_only_with_native_bfloat16(flags, expected):
    precision, why = cpu_precision(flags)
    assert precision == expected and why


def test_an_accelerator_without_a_known_bf16_speed_up_takes_float32():
    assert default_precision("mps")[0] == "32-true"


@pytest.fixture(params=["without", "with"], ids=["a CPU without native bfloat16", "a CPU with native bfloat16"])
def machine(request, monkeypatch, native_bf16_cpu, plain_cpu) -> str:
    """A CPU with native bfloat16 and one without, whichever the suite runs as; the precision each takes."""
    monkeypatch.setenv("LIT_NST_CPUINFO", str({"without": plain_cpu, "with": native_bf16_cpu}[request.param]))
    return {"without": "32-true", "with": "bf16-mixed"}[request.param]


def test_unset_precision_follows_the_machine_and_an_explicit_one_wins(tmp_path, machine):
    default = fit(tmp_path / "default", *job(32), "--trainer.max_steps", "1", "--output.path", tmp_path / "a.png")
    assert default.trainer.precision == default_precision("cpu")[0] == machine
    explicit = [*job(32), "--trainer.max_steps", "1", "--trainer.precision", "32-true"]
    assert fit(tmp_path / "explicit", *explicit, "--output.path", tmp_path / "b.png").trainer.precision == "32-true"


def test_the_run_says_once_which_precision_it_chose_and_why(tmp_path, capfd, machine):
    result = run_main(
        capfd,
        "fit",
        *job(32),
        "--trainer.max_steps",
        "1",
        "--trainer.default_root_dir",
        tmp_path,
        "--output.path",
        tmp_path / "o.png",
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("lit-nst: precision")]
    assert len(notes) == 1 and notes[0].startswith(f"lit-nst: precision {machine}: "), result.stderr
    assert default_precision("cpu")[1] in notes[0], result.stderr
    # Lightning's own device and precision lines are folded into lit-nst's: no GPU here, nothing to act on.
    assert "Using bfloat16" not in result.stderr and "GPU available" not in result.stderr, result.stderr


def test_lightnings_device_lines_leave_only_an_unused_accelerator(monkeypatch):
    lines = ["GPU available: True (cuda), used: False", "TPU available: False, using: 0 TPU cores"]
    assert device_note(lines).startswith("GPU available but not used: --trainer.accelerator gpu")
    assert device_note(["GPU available: True (cuda), used: True", "Using bfloat16 Automatic Mixed Precision"]) is None
    record = logging.LogRecord("lightning", logging.INFO, "", 0, "GPU available: False, used: False", None, None)
    assert not RunNote.hold_start_lines(record)
    monkeypatch.setenv("LIT_NST_VERBOSE", "1")  # Lightning says everything as it comes
    assert RunNote.hold_start_lines(record)
    RunNote.held.clear()


def test_lightnings_short_names_are_judged_as_what_they_mean():
    check_precision("bf16", quasi_newton=True)  # bf16-mixed
    check_precision("16", quasi_newton=False)  # 16-mixed with Adam
    with pytest.raises(UsageError, match="cannot drive L-BFGS"):
        check_precision("16", quasi_newton=True)
    with pytest.raises(UsageError, match="16 bits"):
        check_precision("bf16-true", quasi_newton=False)
