"""The CLI as a user drives it: end to end (run two seeds, then the leaderboard) and every bad input."""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.plugins import hookimpl
from tests.runtable import run_rows
from tests.test_genotypes import ARCH_11, DARTS_V2

TINY = ["--preset", "smoke", "--set", "search.epochs=1", "--set", "eval.epochs=1",
        "--set", "search.max_train_images=64", "--set", "eval.max_train_images=64", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_every_command_has_help():
    for path in (["run"], ["leaderboard"], ["plugins"], ["spaces"], ["methods"], ["benchmark", "query"],
                 ["benchmark", "convert"], ["arch", "info"], ["status"]):
        result = invoke(*path, "--help")
        assert result.exit_code == 0, path
        assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_end_to_end_two_seeds_then_leaderboard(tmp_path):
    store = tmp_path / "runs.sqlite"
    result = invoke("run", "--plugin", "darts", "--space", "s2", "--dataset", "digits", "--seeds", "0-1",
                    "--store", store, *TINY)
    assert result.exit_code == 0, result.output
    rows = run_rows(result.output)
    assert len(rows) == 2 and all(r[1:5] == ["completed", "darts", "s2", "digits"] for r in rows)
    assert result.output.splitlines()[0].split()[:6] == ["id", "status", "method", "space", "dataset", "seed"]

    # the same configuration again is skipped, not overwritten
    again = invoke("run", "--plugin", "darts", "--space", "s2", "--dataset", "digits", "--seeds", "0-1",
                   "--store", store, *TINY)
    assert again.exit_code == 0
    assert sqlite3.connect(store).execute("select count(*) from runs").fetchone()[0] == 2

    out = tmp_path / "lb.json"
    lb = invoke("leaderboard", "--store", store, "--export", "json", "--output", out)
    assert lb.exit_code == 0, lb.output
    data = json.loads(out.read_text())
    assert "mean ± std" in json.dumps(data["header"], ensure_ascii=False)
    assert "harness" in data["header"]["command"]
    row = json.dumps(data["rows"], ensure_ascii=False)
    assert "darts" in row and "s2" in row

    md = invoke("leaderboard", "--store", store, "--export", "markdown")
    assert md.exit_code == 0 and "darts" in md.output and "n=2" in md.output


def test_record_holds_what_reproduction_needs(tmp_path):
    from harness.store import ResultStore

    store = tmp_path / "runs.sqlite"
    invoke("run", "--plugin", "gdas", "--space", "nb201", "--dataset", "digits", "--store", store, *TINY)
    (record,) = ResultStore(store).records(None)
    assert record.status == "completed", record.error
    assert record.genotype.startswith("|") and record.seed == 0
    assert record.config["components"] == {"sampler": "gumbel", "optimizer": "first-order",
                                           "selector": "pair-top2", "cell": "single-path"}
    assert record.config["hparams"]["sampler"]["tau_max"] == 10.0
    assert record.config["hparams"]["optimizer"]["order"] == "weight-first"
    # every component of gdas comes from this distribution: exactly its installed version is recorded
    from importlib.metadata import version

    assert record.plugins == {"nas-harness": version("nas-harness")}
    assert record.torch_version and record.device == "cpu" and record.command.startswith("harness ")
    assert record.metrics["source"] == "retrain" and 0 <= record.metrics["test_accuracy"] <= 100
    assert record.search["curve"] and "wall_s" in record.costs and "search_s" in record.costs
    # uncaptured, on one thread (runtime.threads's default); the smoke preset asks for the fused cells on
    # a CPU too (runtime.fast_cpu): GDAS's 9 single-path cells (3 stages of 3 on nb201) choose their ops
    # on the device and run fused (issue 17)
    assert record.search["runtime"] == {"fast": True, "fast_cells": 9, "cuda_graph": False, "threads": 1,
                                        "deterministic": False}


def test_cpu_runs_take_the_fused_cell_only_in_the_smoke_preset(tmp_path):
    rows = {}
    for preset in ("smoke", "quick", "paper"):
        out = invoke("run", "--plugin", "darts", "--space", "s2", "--preset", preset, "--dry-run",
                     "--store", str(tmp_path / "runs.sqlite"))
        rows[preset] = json.loads(out.output)["runtime"]
    assert rows["smoke"]["fast_cpu"] is True
    assert rows["quick"]["fast_cpu"] is False and rows["paper"]["fast_cpu"] is False
    assert all(r["fast"] is True for r in rows.values())  # CUDA takes it in every preset
    # and captures the step where it can (issue 12: on by default once measured within the rounding baseline)
    assert all(r["cuda_graph"] == "auto" for r in rows.values())


def test_cuda_graph_takes_true_false_or_auto_and_names_them_otherwise(tmp_path):
    base = ["run", "--plugin", "darts", "--space", "s2", "--dry-run", "--store", str(tmp_path / "runs.sqlite")]
    assert json.loads(invoke(*base, "--set", "runtime.cuda_graph=off").output)["runtime"]["cuda_graph"] is False
    result = CliRunner().invoke(cli, [*base, "--set", "runtime.cuda_graph=sometimes"])
    assert result.exit_code != 0 and "'sometimes'" in result.output and "true, false or auto" in result.output


def test_cell_slots_takes_true_false_or_auto_and_names_them_otherwise(tmp_path):
    """cell.slots (the single-path cells' conv slots): auto by default since 2026-12-05, read as cuda_graph is."""
    base = ["run", "--plugin", "gdas", "--space", "s2", "--dry-run", "--store", str(tmp_path / "runs.sqlite")]
    assert json.loads(invoke(*base).output)["hparams"]["cell"]["slots"] == "auto"
    assert json.loads(invoke(*base, "--set", "cell.slots=off").output)["hparams"]["cell"]["slots"] is False
    result = CliRunner().invoke(cli, [*base, "--set", "cell.slots=sometimes"])
    assert result.exit_code != 0 and "slots must be true, false or auto, not 'sometimes'" in result.output


def test_cuda_graph_asked_for_on_cpu_is_recorded_as_off_with_the_reason(tmp_path):
    from harness.store import ResultStore

    store = tmp_path / "runs.sqlite"
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--dataset", "digits",
                                      "--store", str(store), *TINY[:-1], "--set", "runtime.cuda_graph=true"])
    assert result.exit_code == 0, result.output
    assert "runtime.cuda_graph=true ignored: CUDA graphs need a CUDA device" in result.output
    (record,) = ResultStore(store).records(None)
    assert record.status == "completed"
    runtime = record.search["runtime"]
    assert runtime["cuda_graph"] is False and "this run is on cpu" in runtime["cuda_graph_off"]
    assert record.costs["peak_rss_bytes"] > 0 and record.costs["peak_rss_scope"] in ("run", "process")


def test_cpu_peak_memory_is_per_run_not_per_process():
    """A grid runs in one process; each run's peak RSS must not inherit an earlier run's peak. In a fresh
    process: in a test process that earlier tests left at its high-water mark, freeing 64 MiB need not lower
    the resident set (it failed once so in the suite, 1.29 GB before and after, with the tests in another order)."""
    import subprocess
    import sys

    probe = ("import numpy as np\n"
             "from harness.builtin import peak_rss_bytes, reset_peak_rss\n"
             "big = np.ones(64 * 2**20 // 8)  # 64 MiB, touched\n"
             "del big\n"
             "before = peak_rss_bytes()\n"
             "print(before, reset_peak_rss(), peak_rss_bytes())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "None" or out[1] != "True":
        pytest.skip("this kernel has no resettable VmHWM (/proc/self/clear_refs)")
    before, after = int(out[0]), int(out[2])
    assert after < before - 32 * 2**20


def test_plugins_and_spaces_listings():
    plugins = json.loads(invoke("plugins", "--json").output)
    by_name = {p["name"]: p for p in plugins}
    assert {"core", "darts", "gdas"} <= set(by_name)
    assert "softmax" in by_name["darts"]["registers"]["sampler"]
    assert by_name["darts"]["distribution"] == "nas-harness" and by_name["darts"]["version"]
    spaces = {s["name"]: s for s in json.loads(invoke("spaces", "--json").output)}
    assert set(spaces) >= {"darts", "s1", "s2", "s3", "s4", "nb201"}
    assert spaces["s1"]["ops"]["normal"][0] == ["skip_connect", "dil_conv_3x3"]
    # NB201's N counts cells per stage (N=5: 3 stages of 5 cells), DARTS's layers count cells (8)
    assert (spaces["nb201"]["layers_unit"], spaces["darts"]["layers_unit"]) == ("cells per stage", "cells")
    text = invoke("spaces").output
    assert "search network: C=16, 5 cells per stage" in text and "search network: C=16, 8 cells" in text


def test_datasets_listing():
    """Shapes as the datasets are published: sklearn digits 8x8 grey (10 classes), Fashion-MNIST 28x28 grey,
    ImageNet16-120 16x16 RGB with 120 classes, CIFAR-100 100 classes."""
    rows = {r["name"]: r for r in json.loads(invoke("datasets", "--json").output)}
    shape = {n: (r["channels"], r["resolution"], r["classes"]) for n, r in rows.items()}
    assert shape["digits"] == (1, 8, 10) and shape["fashion-mnist"] == (1, 28, 10)
    assert shape["imagenet16-120"] == (3, 16, 120) and shape["cifar100"] == (3, 32, 100)
    assert {r["plugin"] for r in rows.values()} == {"core"}
    assert "digits: 1x8x8, 10 classes (core) [default]" in invoke("datasets").output


def test_arch_info_anchor_counts():
    out = json.loads(invoke("arch", "info", "--space", "darts", DARTS_V2, "--json").output)
    assert out["params"] == 3_349_342
    out = json.loads(invoke("arch", "info", "--space", "nb201", ARCH_11, "--json").output)
    assert out["params"] == 802_426 and out["flops"] == 113_951_360


@pytest.mark.parametrize("args, fragment", [
    (["run", "--plugin", "nope"], "unknown plugin/method 'nope'; valid choices:"),
    (["run", "--plugin", "darts", "--space", "s9"], "unknown space 's9'; valid choices: darts, nb201, s1"),
    (["run", "--plugin", "darts", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["run", "--plugin", "darts", "--preset", "huge"], "unknown preset 'huge'; valid choices: paper, quick, smoke"),
    (["run", "--plugin", "darts", "--set", "search.epoch=3"], "unknown key for search 'epoch'"),
    (["run", "--plugin", "darts", "--set", "rome.k=4"], "unknown --set target 'rome'"),
    (["run", "--plugin", "darts", "--set", "search.epochs=many"], "search.epochs='many'"),
    (["run", "--plugin", "darts", "--set", "nodot"], "expected COMPONENT.KEY=VALUE"),
    (["run", "--plugin", "darts", "--selector", "magic"], "unknown selector 'magic'; valid choices: argmax"),
    (["run", "--plugin", "darts", "--dataset", "cifar10", "--data-dir", "/nonexistent/dir"], "--data-dir"),
    (["run", "--plugin", "entrannas,entrannas-dst", "--space", "nb201"],
     "nothing to run: method 'entrannas' does not apply to space 'nb201' (its spaces: darts, s1, s2, s3, s4); "
     "method 'entrannas-dst' does not apply to space 'nb201'"),
    (["arch", "info", "--space", "s1", DARTS_V2], "not in space 's1'"),
    (["arch", "info", "--space", "darts", "Genotype(normal=[('sep_conv_3x3', 9)"], "malformed"),
    (["benchmark", "query", "--benchmark", "/nonexistent.csv", ARCH_11], "/nonexistent.csv"),
])
def test_bad_input_is_one_line_exit_2(args, fragment, tmp_path):
    result = CliRunner().invoke(cli, args + ["--store", str(tmp_path / "s.sqlite")] if args[0] == "run" else args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s.sqlite").exists() or sqlite3.connect(tmp_path / "s.sqlite").execute(
        "select count(*) from runs").fetchone()[0] == 0


def test_cuda_without_gpu_is_refused(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--device", "cuda", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "no CUDA device" in result.output


def test_unwritable_store(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--store", str(blocker / "sub" / "r.sqlite"), *TINY])
    assert result.exit_code == 2 and str(blocker) in result.output


def test_crash_mid_search_is_recorded_as_failed(tmp_path, monkeypatch):
    import harness.search as search
    from harness.store import ResultStore

    def boom(**kwargs):
        raise RuntimeError("simulated crash in the search loop")

    monkeypatch.setattr(search, "run_search", boom)
    store = tmp_path / "runs.sqlite"
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--store", str(store), *TINY])
    assert result.exit_code == 1
    (record,) = ResultStore(store).records(None)
    assert record.status == "failed" and "simulated crash" in record.error


def test_out_of_memory_on_the_single_path_fast_path_says_how_to_run_the_methods_own_cell(tmp_path, monkeypatch):
    """GDAS/ROME's fast cells compute every op (a DARTS supernet's memory, BENCHMARKS.md): a search that runs
    out of memory there is recorded with the way back to the method's one-op cell; other runs keep the error
    as raised. The allocator's error is raised by hand (no GPU here); what is tested is what the run records."""
    import torch

    import harness.search as search
    from harness.store import ResultStore

    def oom(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(search, "run_search", oom)
    for i, (method, sets, hinted) in enumerate([("gdas", [], True), ("gdas", ["--set", "runtime.fast=false"], False),
                                                ("darts", [], False), ("rome-v2", [], True),
                                                # ROME's chosen-op pass runs one op per edge and sample
                                                ("rome-v2", ["--set", "optimizer.group_ops=chosen"], False)]):
        store = tmp_path / f"runs{i}.sqlite"
        result = CliRunner().invoke(cli, ["run", "--plugin", method, "--space", "s2", "--store", str(store),
                                          *TINY, *sets])
        assert result.exit_code == 1, result.output
        (record,) = ResultStore(store).records(None)
        assert record.status == "failed" and record.error.startswith("OutOfMemoryError: CUDA out of memory")
        assert ("--set runtime.fast=false runs the method's own one-op cell" in record.error) is hinted, record.error
        if hinted:  # the smoke preset's 3 cells, on the fast path on a CPU too (runtime.fast_cpu)
            assert f"{method}'s 3 single-path cells were on the fast path" in record.error, record.error


def test_dry_run_prints_resolved_configs_and_runs_nothing(tmp_path):
    """--dry-run shows what a grid would run, with per-space budgets (DARTS-PT: NB201 supernet 100 epochs)."""
    store = tmp_path / "runs.sqlite"
    result = invoke("run", "--plugin", "darts-pt", "--space", "darts,nb201", "--dataset", "cifar10",
                    "--preset", "paper", "--seeds", "0-1", "--dry-run", "--store", store)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["space"], r["seed"]) for r in rows] == [("darts", 0), ("darts", 1), ("nb201", 0), ("nb201", 1)]
    assert [r["search"]["epochs"] for r in rows] == [50, 50, 100, 100]
    assert rows[2]["hparams"]["selector"]["tune_lr_schedule"] == "constant"
    assert not store.exists()  # nothing recorded, no data read (cifar10 is not on this machine)
    smoke = invoke("run", "--plugin", "darts-pt", "--space", "nb201", "--dry-run", "--store", store)
    smoke_row = json.loads(smoke.output)
    assert smoke_row["search"]["epochs"] == 2  # the preset's cap still applies
    # and the selector's own smoke settings shrink its work, in darts-pt and wherever it is swapped in
    assert smoke_row["hparams"]["selector"]["tune_steps"] == 1
    swapped = invoke("run", "--plugin", "darts", "--selector", "pt", "--space", "nb201", "--dry-run", "--store", store)
    assert json.loads(swapped.output)["hparams"]["selector"]["tune_steps"] == 1
    paper = invoke("run", "--plugin", "darts", "--selector", "pt", "--space", "nb201", "--dry-run", "--store", store,
                   "--preset", "paper")
    assert json.loads(paper.output)["hparams"]["selector"]["tune_steps"] is None  # a whole epoch (the paper)
    bad = invoke("run", "--plugin", "darts-pt", "--dataset", "cifar11", "--dry-run", "--store", store)
    assert bad.exit_code == 2 and "cifar11" in bad.output and "cifar10" in bad.output


def test_methods_json_shows_recipes_with_their_budgets():
    rows = {r["name"]: r for r in json.loads(invoke("methods", "--json").output)}
    assert {"darts", "darts-2nd", "gdas", "rome-v1", "rome-v2", "single-darts", "darts-pt",
            "darts-pt-fixed-alpha", "entrannas", "entrannas-dst"} <= set(rows)
    assert rows["darts-pt"]["space_budgets"] == {"nb201": {"paper": {"search": {"epochs": 100}}}}
    assert rows["gdas"]["budgets"]["paper"]["search"]["epochs"] == 250
    assert rows["darts"]["spaces"] == "all"


def test_thread_count_is_set_per_run_recorded_and_restored(tmp_path):
    import torch

    from harness.store import ResultStore

    before = torch.get_num_threads()
    store = tmp_path / "runs.sqlite"
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--dataset", "digits",
                                      "--store", str(store), *TINY[:-1], "--set", "runtime.threads=2"])
    assert result.exit_code == 0, result.output
    (record,) = ResultStore(store).records(None)
    assert record.search["runtime"]["threads"] == 2
    assert torch.get_num_threads() == before  # the process's setting is back
    bad = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--set", "runtime.threads=-1",
                                   "--dry-run"])
    assert bad.exit_code == 2 and "threads" in bad.output and "-1" in bad.output


def test_a_grid_skips_the_pairs_a_method_does_not_apply_to_and_says_so_once(tmp_path):
    # EnTranNAS's paper searches the DARTS spaces only (SPEC-FACTS; MethodInfo.spaces): a grid over
    # s2 and nb201 runs darts on both and entrannas on s2, and names the one pair it leaves out
    result = CliRunner().invoke(cli, ["run", "--plugin", "darts,entrannas", "--space", "s2,nb201", "--seeds", "0,1",
                                      "--dry-run", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["method"], r["space"], r["seed"]) for r in rows] == [
        ("darts", "s2", 0), ("darts", "s2", 1), ("darts", "nb201", 0), ("darts", "nb201", 1),
        ("entrannas", "s2", 0), ("entrannas", "s2", 1)]
    assert result.stderr.count("entrannas on nb201") == 1
    assert "skipped 1 (method, space) pair(s) the method does not apply to: entrannas on nb201 (its spaces: " \
           "darts, s1, s2, s3, s4)" in result.stderr


def test_deterministic_runs_twice_give_identical_records_and_say_so(tmp_path):
    import torch

    from harness.store import ResultStore

    store = tmp_path / "runs.sqlite"
    args = ["run", "--plugin", "darts", "--space", "s2", "--store", str(store), *TINY,
            "--set", "runtime.deterministic=true"]
    assert invoke(*args).exit_code == 0
    assert invoke(*args, "--force").exit_code == 0  # the same configuration again, a second row
    a, b = ResultStore(store).records(None)
    assert a.status == b.status == "completed" and a.config_key == b.config_key
    assert a.search["runtime"]["deterministic"] is True
    assert a.genotype == b.genotype and a.metrics == b.metrics
    assert a.search["probabilities"] == b.search["probabilities"]
    assert [{k: v for k, v in c.items() if k != "seconds"} for c in a.search["curve"]] == \
        [{k: v for k, v in c.items() if k != "seconds"} for c in b.search["curve"]]
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run


class _Watcher:
    """A lifecycle-hook plugin that keeps what each hook was given."""

    def __init__(self):
        self.search, self.retrain, self.derived = [], [], []

    @hookimpl
    def harness_epoch_end(self, spec, epoch, stats):
        self.search.append((epoch, stats))

    @hookimpl
    def harness_genotype_derived(self, spec, genotype, record):
        self.derived.append((genotype.to_string(), record.genotype))

    @hookimpl
    def harness_retrain_epoch_end(self, spec, epoch, stats):
        self.retrain.append((epoch, stats))


# DARTS's parameter-free ops (the DARTS paper's op list: pooling, identity, zero)
PARAMETER_FREE = {"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"}


def _watched_run(tmp_path, name, *extra):
    import harness.plugins as plugins
    from harness.plugins import Registry, get_plugin_manager
    from harness.store import ResultStore

    watcher = _Watcher()
    pm = get_plugin_manager()
    pm.register(watcher, name="watcher")
    try:
        plugins._REGISTRY = Registry(pm)
        result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "s2", "--store",
                                          str(tmp_path / name), "--preset", "smoke", "--set", "search.epochs=3",
                                          "--set", "eval.epochs=3", "--quiet", *extra], catch_exceptions=False)
    finally:
        plugins._REGISTRY = None
    assert result.exit_code == 0, result.output
    (record,) = ResultStore(tmp_path / name).records()
    return watcher, record


def test_each_epoch_is_recorded_with_what_plots_need_and_the_hooks_see_it(tmp_path):
    """Issue 15: per search epoch the probabilities, the genotype the selector would derive then and its
    parameter-free op count; per retrain epoch train loss/accuracy and (runtime.test_every) the test
    accuracy; the lifecycle hooks get the same. Testing every epoch changes nothing in the result."""
    watcher, record = _watched_run(tmp_path, "a.sqlite", "--set", "runtime.test_every=1")
    curve = record.search["curve"]
    assert [e for e, _ in watcher.search] == [0, 1, 2] and len(curve) == 3
    for entry, (_, stats) in zip(curve, watcher.search):
        assert entry["genotype"] == stats["genotype"] and entry["genotype_rule"] == "selector"
        for kind in ("normal", "reduce"):  # a softmax over each edge's ops: rows sum to 1 (4 decimals)
            rows = entry["probabilities"][kind]
            assert len(rows) == 14 and all(abs(sum(r) - 1) < 1e-3 for r in rows)
        normal = entry["genotype"].split("normal=")[1].split("normal_concat")[0]
        assert entry["param_free_normal"] == sum(normal.count(f"'{op}'") for op in PARAMETER_FREE)
    # argmax selection after the last epoch reads the same probabilities: the last epoch's genotype is it
    assert curve[-1]["genotype"] == record.genotype
    assert watcher.derived == [(record.genotype, record.genotype)]
    retrain = record.metrics["curve"]
    assert [e for e, _ in watcher.retrain] == [0, 1, 2] and len(retrain) == 3
    assert all(0 <= e["train_acc"] <= 100 and "test_acc" in e for e in retrain)
    assert retrain[-1]["test_acc"] == record.metrics["test_accuracy"]
    # the same run tested only at the end: the same training, the same result
    _, plain = _watched_run(tmp_path, "b.sqlite")
    assert plain.metrics["test_accuracy"] == record.metrics["test_accuracy"]
    assert [e["train_loss"] for e in plain.metrics["curve"]] == [e["train_loss"] for e in retrain]
    assert "test_acc" not in plain.metrics["curve"][0] and "test_acc" in plain.metrics["curve"][-1]
