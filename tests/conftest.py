import os
from pathlib import Path

# No test runs on a GPU: Triton kernels (harness.nn.dwconv) run in Triton's interpreter, which Triton
# chooses when it is imported, so the switch is set before anything imports it.
os.environ["TRITON_INTERPRET"] = "1"

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or a skip that says why when it is absent (fresh clones have none)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present: this test reads ../shared beside the checkout")
    return path


def pytest_configure(config):
    # the tests' tensors are tiny: one intra-op thread is faster than torch's one per core (measured on
    # the 2-core CI machine: 55 s vs 69 s for the two slowest DARTS-PT tests) and is what every harness
    # run uses by default (runtime.threads=1)
    import torch

    torch.set_num_threads(1)
    # and the subprocesses the tests start (benchmark scripts, gpu_all.py's worker, the compile checks): torch's
    # default there, a thread per core beside the other test process, took gpu_all's budget test from 7 s alone to
    # 27-39 s in the suite (2026-12-05)
    os.environ["OMP_NUM_THREADS"] = "1"
    # Triton's interpreter's int32 overflow check, which it drops unless debug is on too
    # (harness.nn.dwconv.interpreter_checks): half of the interpreter's time for nothing (98 s against 68 s of CPU
    # for test_dwconv, test_bntriton, test_slots and test_graphs, 2026-12-05). Off for the suite; the tests of
    # the kernel forms alone (test_dwconv, test_bntriton, test_slots's sample groups) take it with debug on,
    # where it fails the test (overflow_checked).
    from harness.nn.dwconv import interpreter_checks

    interpreter_checks(overflow=False, debug=False)
    # Triton is imported now, in the interpreter's form; from here on the kernels run on this CPU only in the tests
    # that ask for them (the ``interpret`` fixture), as on a CPU outside the tests: the shipped defaults take
    # them in captured steps (harness.nn.fused.DEPTHWISE_TRITON, cell.slots=auto), which the other tests' captured
    # forms must not spend minutes of the interpreter on. Subprocesses inherit "0" (gpu_all.py's TINY sets "1")
    os.environ["TRITON_INTERPRET"] = "0"


@pytest.fixture
def overflow_checked():
    """Triton's interpreter failing a launch whose int32 index arithmetic overflows (and on any tl.device_assert):
    the suite runs without it (pytest_configure)."""
    from harness.nn.dwconv import interpreter_checks

    interpreter_checks(overflow=True, debug=True)
    yield
    interpreter_checks(overflow=False, debug=False)


@pytest.fixture
def interpret(monkeypatch):
    """Triton's interpreter for harness.nn.dwconv's kernels on this CPU, or a skip that says why it cannot run."""
    import torch

    from harness.nn import dwconv

    monkeypatch.setenv("TRITON_INTERPRET", "1")  # (set above, before Triton's import)
    why = dwconv.why_not(torch.zeros(1))
    if why is not None:
        pytest.skip(f"Triton's interpreter is not usable here: {why}")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    # runs write their store and nothing else under tmp; no stray env switches leak in
    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    yield


@pytest.fixture(scope="module")
def official_file(tmp_path_factory) -> Path:
    """A small NAS-Bench-201 file in the official format (tests/nb201kit.py)."""
    from tests.nb201kit import write_official_file

    return write_official_file(tmp_path_factory.mktemp("nb201"))
