"""The plugin host: entry-point loading, registration rules, env switches, hook coverage, and a
third-party plugin installed with pip."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import hookspecs
from harness.api import MethodInfo
from harness.errors import HarnessError
from harness.plugins import Registry, get_plugin_manager, hookimpl
from tests.runtable import run_rows

REPO = Path(__file__).resolve().parents[1]
SPEC_NAMES = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("harness_"))


def test_hookspecs_module_holds_specs_only_and_each_is_documented():
    assert SPEC_NAMES, "no hook specs"
    for name in SPEC_NAMES:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc.splitlines()) >= 4, f"{name} needs a real docstring"
        assert "Fires" in doc, f"{name}'s docstring must say when it fires"


def test_every_hookspec_has_a_test_and_a_readme_entry():
    """Meta-test (as datasette's): every hook is exercised by some test and mentioned in the docs."""
    tests = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))  # names are never literal here
    docs = (REPO / "docs" / "hooks.md").read_text()
    for name in SPEC_NAMES:
        assert name in tests, f"no test mentions {name}"
        assert f"`{name}" in docs, f"docs/hooks.md does not document {name}"


class _Recorder:
    """A fixture plugin that records lifecycle hooks (harness_run_start, harness_epoch_end,
    harness_run_end) and registers a method reusing other plugins' components."""

    def __init__(self, raise_at_start=False):
        self.events = []
        self.raise_at_start = raise_at_start

    @hookimpl
    def harness_register_methods(self, register):
        register(MethodInfo(name="recorded-darts", sampler="softmax", optimizer="first-order",
                            selector="argmax", cell="mixed"))

    @hookimpl
    def harness_run_start(self, spec, record):
        self.events.append(("start", spec.method, record.id))
        record.search["tracker_run"] = "recorder-1"  # the hook spec lets run-start hooks write here
        if self.raise_at_start:
            raise RuntimeError("tracker unreachable")

    @hookimpl
    def harness_epoch_end(self, spec, epoch, stats):
        self.events.append(("epoch", epoch, sorted(stats)))

    @hookimpl
    def harness_run_end(self, spec, record):
        self.events.append(("end", record.status, record.genotype is not None))


def _run_recorded(recorder, store, *sets):
    """``harness run --plugin recorded-darts --space s3`` with ``recorder`` registered for the call."""
    import harness.plugins as plugins
    from click.testing import CliRunner

    from harness.cli import cli

    pm = get_plugin_manager()
    pm.register(recorder, name="recorder")
    try:
        plugins._REGISTRY = Registry(pm)
        return CliRunner().invoke(cli, ["run", "--plugin", "recorded-darts", "--space", "s3", "--quiet",
                                        "--store", str(store), *[x for s in sets for x in ("--set", s)]])
    finally:
        pm.unregister(recorder)
        plugins._REGISTRY = None


def test_lifecycle_hooks_fire_in_order(tmp_path):
    from harness.store import ResultStore

    recorder = _Recorder()
    result = _run_recorded(recorder, tmp_path / "r.sqlite", "search.epochs=2", "eval.epochs=1",
                           "search.max_train_images=64", "eval.max_train_images=64")
    assert result.exit_code == 0, result.output
    kinds = [e[0] for e in recorder.events]
    assert kinds == ["start", "epoch", "epoch", "end"]
    assert recorder.events[0][1] == "recorded-darts" and recorder.events[0][2] is not None
    assert {"train_loss", "val_loss", "probabilities", "lr"} <= set(recorder.events[1][2])
    assert recorder.events[-1] == ("end", "completed", True)
    (stored,) = ResultStore(tmp_path / "r.sqlite").records(None)
    assert stored.search["tracker_run"] == "recorder-1" and stored.search["curve"]  # kept beside the curve


def test_a_run_start_hook_that_raises_fails_the_run_and_records_it(tmp_path):
    from harness.store import ResultStore

    recorder = _Recorder(raise_at_start=True)
    result = _run_recorded(recorder, tmp_path / "r.sqlite", "search.epochs=1", "search.max_train_images=64")
    assert result.exit_code == 1
    (stored,) = ResultStore(tmp_path / "r.sqlite").records(None)
    assert stored.status == "failed" and "tracker unreachable" in stored.error
    assert [e[0] for e in recorder.events] == ["start", "end"]


def test_duplicate_registration_names_both_plugins():
    class A:
        @hookimpl
        def harness_register_samplers(self, register):
            from harness.blocks import SoftmaxConfig

            register("softmax", lambda config, space: None, SoftmaxConfig)

    pm = get_plugin_manager()
    pm.register(A(), name="impostor")
    with pytest.raises(HarnessError, match="registered twice: by plugin 'darts' and by plugin 'impostor'"):
        Registry(pm)


def test_misspelt_hook_fails_loudly():
    import pluggy

    class Typo:
        @hookimpl
        def harness_register_sampler(self, register):  # missing 's'
            pass

    pm = get_plugin_manager()
    pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_autoload_switch_and_allow_list(monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert get_plugin_manager().list_name_plugin() == []
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("HARNESS_PLUGINS", "core,darts")
    names = {n for n, _ in get_plugin_manager().list_name_plugin()}
    assert names == {"core", "darts"}
    monkeypatch.setenv("HARNESS_PLUGINS", "core,nosuch")
    with pytest.raises(HarnessError, match="nosuch"):
        get_plugin_manager()


def test_core_never_names_a_method():
    """No `if method == ...` in the host: method and plugin names appear only in docs/comments."""
    for path in (REPO / "harness").rglob("*.py"):
        code = "\n".join(l.split("#")[0] for l in path.read_text().splitlines())
        for name in ("'gdas'", '"gdas"', "'darts-2nd'", '"darts-2nd"', "harness_darts", "harness_gdas"):
            assert name not in code, f"{path} names {name}"


@pytest.mark.skipif(os.environ.get("HARNESS_SKIP_PIP_TEST") == "1", reason="HARNESS_SKIP_PIP_TEST=1")
def test_third_party_plugin_installs_with_pip_and_runs(tmp_path):
    """pip-install examples/harness-example-method (into a folder of its own on the path, so the environment
    other tests see is left as it was), find it through its entry point, run one smoke search."""
    example = REPO / "examples" / "harness-example-method"
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
           str(example)]
    subprocess.run(pip, check=True, capture_output=True, text=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    harness = [sys.executable, "-m", "harness.cli"]
    listing = subprocess.run(harness + ["plugins"], check=True, capture_output=True, text=True, env=env).stdout
    assert "example  (harness-example-method 0.1.0)" in listing and "tempered-softmax" in listing
    run = subprocess.run(harness + ["run", "--plugin", "tempered-darts", "--space", "s2", "--quiet",
                                    "--store", str(tmp_path / "r.sqlite"), "--set", "search.epochs=1",
                                    "--set", "eval.epochs=1", "--set", "search.max_train_images=64",
                                    "--set", "eval.max_train_images=64"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert [r[1:4] for r in run_rows(run.stdout)] == [["completed", "tempered-darts", "s2"]]
    # and it is not installed in the environment itself
    plain = subprocess.run(harness + ["plugins"], check=True, capture_output=True, text=True).stdout
    assert "harness-example-method" not in plain


def test_every_registration_hook_reaches_the_registry():
    """A fixture plugin using harness_register_samplers, harness_register_optimizers,
    harness_register_selectors, harness_register_cell_types, harness_register_spaces,
    harness_register_benchmarks and harness_register_methods; all land in the registry under its name."""
    from dataclasses import dataclass

    from harness.spaces.darts import DartsFamilySpace, _uniform

    @dataclass(frozen=True)
    class Cfg:
        pass

    class Everything:
        @hookimpl
        def harness_register_samplers(self, register):
            register("toy-sampler", lambda config, space: None, Cfg)

        @hookimpl
        def harness_register_optimizers(self, register):
            register("toy-optimizer", lambda config, **kw: None, Cfg)

        @hookimpl
        def harness_register_selectors(self, register):
            register("toy-selector", lambda config: None, Cfg)

        @hookimpl
        def harness_register_cell_types(self, register):
            register("toy-cell", lambda config: None, Cfg)

        @hookimpl
        def harness_register_spaces(self, register):
            register(DartsFamilySpace("toy-space", "skip only", _uniform(("skip_connect",)), _uniform(("skip_connect",))))

        @hookimpl
        def harness_register_benchmarks(self, register):
            register("toy-bench", lambda path: None, spaces=("toy-space",))

        @hookimpl
        def harness_register_methods(self, register):
            register(MethodInfo(name="toy", sampler="toy-sampler", optimizer="toy-optimizer",
                                selector="toy-selector", cell="toy-cell"))

    pm = get_plugin_manager()
    pm.register(Everything(), name="everything")
    reg = Registry(pm)
    assert reg.plugins["everything"].registers == {
        "sampler": ["toy-sampler"], "optimizer": ["toy-optimizer"], "selector": ["toy-selector"],
        "cell": ["toy-cell"], "space": ["toy-space"], "benchmark": ["toy-bench"], "method": ["toy"]}
    assert reg.benchmark_for("toy-space").name == "toy-bench"
    assert reg.method("toy").plugin == "everything"


def test_a_plugin_that_cannot_be_imported_is_refused_in_one_line_and_the_rest_load(monkeypatch, capsys):
    from importlib import metadata as importlib_metadata

    class BrokenDistribution:  # an installed distribution whose plugin module is missing (a broken install)
        entry_points = [importlib_metadata.EntryPoint(name="broken", value="no_such_module_xyz.plugin", group="harness")]
        metadata = {"Name": "broken-dist"}
        version = "0.0"

    installed = importlib_metadata.distributions
    monkeypatch.setattr(importlib_metadata, "distributions", lambda: [*installed(), BrokenDistribution()])
    registry = Registry(get_plugin_manager())
    assert "darts" in registry.methods and "gdas" in registry.methods
    assert registry.plugins["darts"].distribution == "nas-harness"  # versions still come from the distribution
    line = registry.refused[("plugin", "broken")]
    assert line.startswith("plugin 'broken' (entry point 'no_such_module_xyz.plugin') could not be loaded: "
                           "ModuleNotFoundError")
    assert capsys.readouterr().err.count(line) == 1


def test_a_components_own_preset_settings_go_wherever_it_runs():
    """The perturbation selector registers its smoke settings (one tuning step per decision, one
    measurement batch) with itself, so `--selector pt` under `--preset smoke` is small in any method, not
    only in darts-pt; `paper` keeps the paper's proj_intv of 5 (darts-pt's scripts); --set still wins."""
    from harness.config import parse_sets, resolve
    from harness.plugins import load_registry

    registry = load_registry()

    def selector(method, preset, swaps=None, sets=()):
        spec = resolve(registry, registry.methods[method], "s2", "digits", 0, preset, swaps or {}, parse_sets(sets))
        sel = spec.hparams["selector"]
        return sel.tune_epochs_per_decision, sel.tune_steps, sel.max_val_batches

    assert selector("pc-darts", "smoke", {"selector": "pt"}) == (1, 1, 1)
    assert selector("darts-pt", "smoke") == (1, 1, 1)
    assert selector("pc-darts", "paper", {"selector": "pt"})[0] == 5
    assert selector("pc-darts", "smoke", {"selector": "pt"}, ["selector.tune_steps=2"])[1] == 2


def test_preset_settings_for_an_unknown_preset_or_key_are_refused_by_name():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class ArgmaxLikeConfig:
        keep: int = 2

    class Sloppy:
        @hookimpl
        def harness_register_selectors(self, register):
            register("tiny-argmax", lambda config: None, ArgmaxLikeConfig, presets={"tiny": {}})
            register("bad-key-argmax", lambda config: None, ArgmaxLikeConfig, presets={"smoke": {"tune_steps": 1}})
            register("good-argmax", lambda config: None, ArgmaxLikeConfig, presets={"smoke": {"keep": 1}})

    pm = get_plugin_manager()
    pm.register(Sloppy(), name="sloppy")
    registry = Registry(pm)
    assert "settings for preset 'tiny'; a component's presets are the reduced ones: smoke, quick" in \
        registry.refused[("selector", "tiny-argmax")]
    assert "unknown key for selector 'bad-key-argmax' preset 'smoke' 'tune_steps'; valid choices: keep" in \
        registry.refused[("selector", "bad-key-argmax")]
    assert "argmax" in registry.components["selector"]  # the other plugins load
    assert registry.components["selector"]["good-argmax"].presets == {"smoke": {"keep": 1}}
