"""benchmarks/collapse_study.py end to end on a tiny budget: it runs the grid through `harness run`
and reports the parameter-free ops of each derived normal cell with the retrained accuracy."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "collapse_study.py"


def test_collapse_study_runs_and_reports(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("collapse_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    store = tmp_path / "study.sqlite"
    tiny = ["--store", str(store), "--device", "cpu", "--methods", "darts", "--spaces", "s2", "--seeds", "0",
            "--dataset", "digits", "--search-epochs", "1", "--search-images", "64", "--search-channels", "4",
            "--search-layers", "3", "--search-batch", "32", "--eval-epochs", "1", "--eval-images", "64",
            "--eval-channels", "4", "--eval-layers", "3", "--eval-batch", "32", "--method-set", "gdas:sampler.tau_max=5"]
    mod.main(tiny)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| darts | s2 | 0 |")]
    assert len(rows) == 1
    free = rows[0].split("|")[4].strip()
    n_free, n_ops = (int(v) for v in free.split("/"))
    assert n_ops == 8 and 0 <= n_free <= 8
    assert '"epochs": 1' in out  # the budget is printed from the stored configs
    mod.main(tiny + ["--report-only"])  # re-reading the store gives the same table
    assert capsys.readouterr().out == out
