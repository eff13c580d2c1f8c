"""The plugin contract (issue 14): no plugin depends on another plugin's internals; what several methods
share is a core building block at one stable import path."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _plugin_packages() -> dict[str, Path]:
    """Every plugin package this repository ships: the built-in ones and the examples'."""
    found = {p.name: p for p in (ROOT / "plugins").iterdir() if (p / "plugin.py").exists()}
    for dist in (ROOT / "examples").iterdir():
        for pkg in dist.iterdir() if dist.is_dir() else ():
            if (pkg / "plugin.py").exists() and "build" not in pkg.parts:
                found[pkg.name] = pkg
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_plugin_imports_another_plugin():
    packages = _plugin_packages()
    assert {"harness_darts", "harness_gdas", "harness_rome", "harness_single_darts", "harness_darts_pt",
            "harness_entrannas", "harness_example_method"} <= set(packages)
    offences = []
    for name, pkg in packages.items():
        for path in pkg.rglob("*.py"):
            for other in _imports(path) & (set(packages) - {name}):
                offences.append(f"{path.relative_to(ROOT)} imports {other}")
    assert offences == []


# where the core registers its own spaces, datasets and benchmark (and their op tables, genotype families)
_REGISTRATION = {"builtin.py", "data.py", "genotypes.py", "nn/ops.py"}


def test_the_core_names_no_method_dataset_or_benchmark_outside_their_registration():
    """Issue 14: no string in the core's code (docstrings and comments aside) names a registered method,
    dataset or benchmark, except in the modules that register them: the runner, CLI and search loop learn
    every name from the registry."""
    import re

    from harness.plugins import load_registry

    registry = load_registry()
    names = set(registry.methods) | set(registry.datasets) | set(registry.benchmarks)
    found = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        rel = path.relative_to(ROOT / "harness").as_posix()
        if rel.split("/")[0] in ("spaces", "benchmarks") or rel in _REGISTRATION:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if hit := set(re.findall(r"[a-z0-9][a-z0-9-]*", node.value.lower())) & names:
                    found.append(f"{rel}:{node.lineno} {sorted(hit)}")
    assert not found, found


def test_the_shared_blocks_have_one_public_home():
    import harness.blocks as blocks
    import harness_darts.components as darts
    import harness_gdas.components as gdas

    for name in blocks.__all__:
        assert getattr(blocks, name) is not None, name
    # the plugins' old names are the same objects (re-exported), not copies
    assert darts.FirstOrderBilevel is blocks.FirstOrderBilevel and darts.MixedCell is blocks.MixedCell
    assert gdas.GumbelSampler is blocks.GumbelSampler and gdas.gumbel_hard is blocks.gumbel_hard
    assert blocks.FirstOrderBilevel.__module__ == "harness.nn.bilevel"


# ---------------------------------------------------------------------------------------------------------
# Conformance: each kind's checks (harness.testing) refuse a component that misses its contract, in one
# line naming the plugin, the component and what is missing; registration refuses what it can see
# without building anything; a grid checks what it uses before its first run.

import dataclasses  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from harness import testing  # noqa: E402
from harness.blocks import AlphaSampler, BilevelConfig, FirstOrderBilevel, MixedCell, SoftmaxConfig  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.plugins import Registry, get_plugin_manager, hookimpl  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Empty:
    pass


class NoProbabilities(nn.Module):  # a sampler that forgot probabilities()
    def __init__(self, config, space):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(len(space.edges), space.n_ops))

    def forward(self):
        return None

    def arch_parameters(self):
        return [self.a]

    def set_progress(self, epoch, total):
        pass

    def regularization(self):
        return None


class DictWeights(AlphaSampler):  # forward returns a plain dict, not ArchWeights
    def transform(self, alpha):
        return alpha.softmax(-1)

    def forward(self):
        return {k: self.transform(a) for k, a in self.alphas.items()}


class NoValFlag(FirstOrderBilevel):  # an optimizer without needs_val_batch
    needs_val_batch = None


class Silent:  # a selector with no select()
    def __init__(self, config):
        pass


class BadBody(nn.Module):
    def forward(self, states, arch):
        return states  # computes no node from the weights


class BadCell:
    def __init__(self, config):
        pass

    def build(self, spec):
        return BadBody()


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_each_kind_names_what_is_missing():
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_sampler(NoProbabilities, Empty(), name="lazy", plugin="acme")
    assert _one_line(e) == "plugin 'acme': sampler 'lazy' lacks probabilities (harness.api.Sampler)"
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_sampler(DictWeights, SoftmaxConfig(), name="dicty", plugin="acme")
    assert _one_line(e) == "plugin 'acme': sampler 'dicty' forward() returned dict, not harness.api.ArchWeights"
    from harness.blocks import BilevelConfig

    with pytest.raises(testing.ConformanceError) as e:
        testing.check_optimizer(NoValFlag, BilevelConfig(), name="flagless", plugin="acme")
    assert _one_line(e) == "plugin 'acme': optimizer 'flagless' needs_val_batch is None, not a bool"
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_selector(Silent, Empty(), name="mute", plugin="acme")
    assert _one_line(e) == "plugin 'acme': selector 'mute' lacks select (harness.api.Selector)"
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_cell_type(BadCell, Empty(), name="hollow", plugin="acme")
    # its cells hand their inputs on untouched: the network runs, but no alpha is ever used
    assert _one_line(e) == ("plugin 'acme': cell type 'hollow' cuts the gradient to the architecture "
                            "parameters (an alpha got none)")
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_config(type("Loose", (), {}), kind="sampler", name="loose", plugin="acme")
    assert "is not a dataclass class" in _one_line(e)


class _BadPlugin:
    """Registers one good sampler and three it should not."""

    @hookimpl
    def harness_register_samplers(self, register):
        @dataclasses.dataclass  # not frozen
        class Mutable:
            init_scale: float = 1e-3

        @dataclasses.dataclass(frozen=True)
        class NoDefault:
            tau: float

        register("acme-good", lambda config, space: DictWeights(config, space), SoftmaxConfig)
        register("acme-mutable", lambda config, space: None, Mutable)
        register("acme-nodefault", lambda config, space: None, NoDefault)
        register("acme-notcallable", "not a factory", SoftmaxConfig)

    @hookimpl
    def harness_register_spaces(self, register):
        class HalfSpace:
            name = "acme-half"  # no family, edges, build_search_network, ...

        register(HalfSpace())


def test_registration_refuses_what_it_can_see_and_the_rest_still_loads():
    pm = get_plugin_manager()
    pm.register(_BadPlugin(), name="acme")
    registry = Registry(pm)
    assert "acme-good" in registry.components["sampler"]  # a conforming registration of the same plugin
    assert "softmax" in registry.components["sampler"]  # every other plugin is unaffected
    refused = registry.refused
    assert refused[("sampler", "acme-mutable")] == ("plugin 'acme': sampler 'acme-mutable' config Mutable is "
                                                    "not frozen (@dataclass(frozen=True))")
    assert refused[("sampler", "acme-nodefault")].startswith(
        "plugin 'acme': sampler 'acme-nodefault' failed in NoDefault() (every field needs a default): TypeError")
    assert refused[("sampler", "acme-notcallable")] == \
        "plugin 'acme': sampler 'acme-notcallable' has a factory that is not callable"
    assert refused[("space", "acme-half")].startswith("plugin 'acme': space 'acme-half' lacks family, cell_kinds")
    with pytest.raises(HarnessError, match="^plugin 'acme': sampler 'acme-mutable' config Mutable is not frozen"):
        registry.component("sampler", "acme-mutable")
    with pytest.raises(HarnessError, match="; it was not registered$"):
        registry.space("acme-half")


def test_a_grid_checks_its_components_before_the_first_run(tmp_path):
    """A method whose sampler breaks the contract in a way only building it shows: the grid stops in one
    line before any run, and nothing reaches the store."""
    import harness.plugins as plugins
    from click.testing import CliRunner

    from harness.api import MethodInfo
    from harness.cli import cli

    class Plugin:
        @hookimpl
        def harness_register_samplers(self, register):
            register("acme-dict", DictWeights, SoftmaxConfig)

        @hookimpl
        def harness_register_cell_types(self, register):
            register("acme-mixed", MixedCell, Empty)

        @hookimpl
        def harness_register_methods(self, register):
            register(MethodInfo(name="acme", sampler="acme-dict", optimizer="first-order", selector="argmax",
                                cell="mixed"))

    pm = get_plugin_manager()
    pm.register(Plugin(), name="acme")
    try:
        plugins._REGISTRY = Registry(pm)
        result = CliRunner().invoke(cli, ["run", "--plugin", "acme", "--space", "s2", "--preset", "smoke",
                                          "--store", str(tmp_path / "s.sqlite")])
    finally:
        plugins._REGISTRY = None
    assert result.exit_code == 2, result.output
    assert "plugin 'acme': sampler 'acme-dict' forward() returned dict, not harness.api.ArchWeights" in result.output
    assert not (tmp_path / "s.sqlite").exists()


class PlainStep:
    """A single-level optimizer whose weight optimizer is its own business (no ``w_opt``)."""

    needs_val_batch = False

    def __init__(self, config, net, steps_per_epoch, epochs):
        self.sgd = torch.optim.SGD(net.weight_parameters(), lr=config.lr, momentum=config.momentum)

    def set_progress(self, epoch, total_epochs):
        pass

    def step(self, net, train, val):
        from harness.api import StepStats

        self.sgd.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(train.x), train.y)
        loss.backward()
        self.sgd.step()
        return StepStats(loss.detach(), n=train.y.shape[0])


class _PairingPlugin:
    @hookimpl
    def harness_register_optimizers(self, register):
        register("acme-no-w-opt", PlainStep, BilevelConfig)


def _run_dry(args, plugin=None):
    """``harness run ... --dry-run`` in process (with ``plugin`` registered as 'acme')."""
    import harness.plugins as plugins
    from click.testing import CliRunner

    from harness.cli import cli

    pm = get_plugin_manager()
    if plugin is not None:
        pm.register(plugin, name="acme")
    try:
        plugins._REGISTRY = Registry(pm)
        return CliRunner().invoke(cli, ["run", *args, "--preset", "smoke", "--dry-run"])
    finally:
        plugins._REGISTRY = None


def test_a_single_path_cell_with_a_dense_sampler_is_refused_before_the_run():
    """GDAS's single-path cell runs the one op per edge a sampler names; DARTS's softmax names none. The
    pairing fails in one line naming both, with the samplers that do name one op per edge (GDAS's Gumbel
    and ROME's two samplers: one path per edge in both papers)."""
    result = _run_dry(["--plugin", "darts", "--space", "nb201", "--cell", "single-path"])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line == ("Error: cell type 'single-path' (plugin 'gdas') needs a sampler with single_path, which sampler "
                    "'softmax' (plugin 'darts') does not have; use another sampler with it; registered samplers "
                    "that fit: gumbel, rome-v1, rome-v2")
    # the same cell behind a single-path sampler, and the softmax sampler behind the mixed cell, both pass
    assert _run_dry(["--plugin", "gdas", "--space", "nb201"]).exit_code == 0
    assert _run_dry(["--plugin", "darts", "--space", "nb201", "--sampler", "gumbel"]).exit_code == 0


def test_darts_pt_needs_a_weight_optimizer_it_can_retune_unless_tune_lr_is_off():
    """DARTS-PT fine-tunes at its own lr (0.0025) through the optimizer's ``w_opt``; an optimizer without
    one is refused before the run, unless ``selector.tune_lr`` is off (then any optimizer will do)."""
    args = ["--plugin", "darts-pt", "--space", "nb201", "--optimizer", "acme-no-w-opt"]
    result = _run_dry(args, _PairingPlugin())
    assert result.exit_code == 2, result.output
    assert "selector 'pt' (plugin 'darts_pt') needs an optimizer with w_opt" in result.output, result.output
    assert "optimizer 'acme-no-w-opt' (plugin 'acme') does not have" in result.output
    assert "first-order" in result.output.splitlines()[-1]  # among the optimizers that fit
    assert _run_dry([*args, "--set", "selector.tune_lr=None"], _PairingPlugin()).exit_code == 0


def test_a_requirement_on_the_space_names_the_spaces_that_fit():
    """EnTranNAS-DST's selector writes DARTS and NB201 genotypes only: swapped into a run on a space of
    another family, the run is refused before it starts."""
    from harness.spaces.nb201 import NB201Space

    class TreeSpace(NB201Space):
        name, family = "acme-tree", "tree"

    class Plugin:
        @hookimpl
        def harness_register_spaces(self, register):
            register(TreeSpace())

    result = _run_dry(["--plugin", "darts", "--selector", "dst-keep-nonzero", "--space", "acme-tree"], Plugin())
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: selector 'dst-keep-nonzero' (plugin 'entrannas') needs a space with family in "
                           "('darts', 'nb201'), which space 'acme-tree' does not have"), line
    assert "registered spaces that fit: darts, nb201, s1, s2, s3, s4" in line


def test_a_malformed_requirement_is_named():
    from harness.testing import ConformanceError, check_together, requirements

    class Wants:
        requires = {"samplr": ("single_path",)}

    with pytest.raises(ConformanceError, match="requirement on 'samplr', which is not a kind of component; "
                                               "valid: sampler, optimizer, selector, cell, space"):
        requirements(Wants(), kind="cell", name="acme")
    Wants.requires = {"sampler": "single_path"}  # a string, not a tuple of names
    with pytest.raises(ConformanceError, match=r"requires\['sampler'\] = 'single_path': expected a tuple"):
        check_together({"cell": Wants(), "sampler": object()})


def test_plugins_check_runs_every_check(tmp_path):
    from click.testing import CliRunner

    import harness.plugins as plugins
    from harness.cli import cli

    import harness.builtin
    import harness_darts.plugin

    pm = get_plugin_manager(load_entrypoints=False)  # core and darts only: the full checks of every
    pm.register(harness.builtin, name="core")        # installed plugin take seconds (DARTS-PT's selection)
    pm.register(harness_darts.plugin, name="darts")
    pm.register(_BadPlugin(), name="acme")
    try:
        plugins._REGISTRY = Registry(pm)
        result = CliRunner().invoke(cli, ["plugins", "--check"])
    finally:
        plugins._REGISTRY = None
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "REFUSED  plugin 'acme': sampler 'acme-notcallable' has a factory that is not callable" in lines
    assert "FAILED   plugin 'acme': sampler 'acme-good' forward() returned dict, not harness.api.ArchWeights" in lines
    assert "ok       space nb201 (core)" in lines and "ok       optimizer first-order (darts)" in lines
    assert lines[-1] == "5 failed"  # four refused registrations and the one that does not conform


# ---------------------------------------------------------------------------------------------------------
# Datasets register through a hook (the built-in ones through core), loaders are checked against their info


def _stripes(data_dir, download):
    """A synthetic 4-class set: 1 x 8 x 8 images whose stripe row is the class (deterministic)."""
    import numpy as np

    rng = np.random.RandomState(0)
    y = rng.randint(0, 4, size=320)
    x = (rng.rand(320, 1, 8, 8) * 60).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 2, :] = 255
    return x[:256], y[:256], x[256:], y[256:]


class _DataPlugin:
    @hookimpl
    def harness_register_datasets(self, register):
        from harness.data import DatasetInfo

        register(DatasetInfo("acme-stripes", 1, 8, 4, mean=(0.3,), std=(0.4,), crop_padding=0, flip=False,
                             description="stripes: the row of the bright band is the class"), _stripes)
        register(DatasetInfo("acme-wrong", 1, 8, 4, mean=(0.3,), std=(0.4,), crop_padding=0, flip=False,
                             description="a loader that returns float images"),
                 lambda data_dir, download: tuple(a.astype("float32") if i % 2 == 0 else a
                                                  for i, a in enumerate(_stripes(data_dir, download))))
        register("not an info", _stripes)


def test_a_plugin_dataset_runs_a_grid_and_a_bad_loader_is_named(tmp_path):
    import harness.plugins as plugins
    from click.testing import CliRunner

    from harness.cli import cli
    from harness.data import load_dataset
    from harness.store import ResultStore

    pm = get_plugin_manager()
    pm.register(_DataPlugin(), name="acme")
    registry = Registry(pm)
    assert "digits" in registry.datasets and registry.datasets["digits"].plugin == "core"
    assert registry.refused[("dataset", "not an info")] == \
        "plugin 'acme': dataset 'not an info' has info that is not a harness.data.DatasetInfo"
    data = load_dataset("acme-stripes", registry=registry)
    assert tuple(data.train_x.shape) == (256, 1, 8, 8) and data.info.num_classes == 4
    with pytest.raises(HarnessError) as e:
        load_dataset("acme-wrong", registry=registry)
    assert str(e.value) == "plugin 'acme': dataset 'acme-wrong''s loader gave train images torch.float32 " \
                           "(256, 1, 8, 8), not uint8 N x 1 x 8 x 8"
    try:
        plugins._REGISTRY = registry
        result = CliRunner().invoke(cli, ["run", "--plugin", "darts", "--space", "nb201", "--dataset", "acme-stripes",
                                          "--preset", "smoke", "--set", "eval.epochs=1", "--store",
                                          str(tmp_path / "s.sqlite"), "--quiet"])
    finally:
        plugins._REGISTRY = None
    assert result.exit_code == 0, result.output
    (rec,) = ResultStore(tmp_path / "s.sqlite").records()
    # nb201 answers for cifar10/100 and ImageNet16-120 only (the benchmark's declared datasets): retrained
    assert rec.dataset == "acme-stripes" and rec.metrics["source"] == "retrain"


class _BenchPlugin:
    """A third party's tabular benchmark over NB201 cells: accuracy = 90 + the number of conv edges."""

    @hookimpl
    def harness_register_benchmarks(self, register):
        class Result:
            def __init__(self, arch, dataset):
                self.arch, self.dataset = arch, dataset
                self.test_accuracy = 90.0 + arch.count("conv")
                self.valid_accuracy = None

            def to_dict(self):
                return {"arch": self.arch, "dataset": self.dataset, "test_accuracy": self.test_accuracy,
                        "source": "acme table v1"}

        class Bench:
            datasets = ("acme-stripes",)

            def __init__(self, path):
                self.path = path

            def query(self, arch, dataset):
                return Result(str(arch), dataset)

        register("acme-bench", Bench, spaces=("acme-space",), datasets=("acme-stripes",),
                 default_path=lambda: "acme.table", doc="acme's table")


def test_check_benchmark_on_a_plugin_benchmark_and_on_one_whose_results_lack_to_dict():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(_BenchPlugin(), name="acme")
    info = Registry(pm).benchmarks["acme-bench"]
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    (res,) = testing.check_benchmark(info.opener, "acme.table", arch, name="acme-bench", plugin="acme").values()
    assert res.test_accuracy == 93.0

    class Bare:  # a result with the accuracy only
        test_accuracy, valid_accuracy = 91.0, None

    class Lazy:
        datasets = ("acme-stripes",)

        def __init__(self, path):
            pass

        def query(self, arch, dataset):
            return Bare()

    with pytest.raises(testing.ConformanceError) as e:
        testing.check_benchmark(Lazy, "x", arch, name="lazy-bench", plugin="acme")
    assert _one_line(e) == ("plugin 'acme': benchmark 'lazy-bench' answers 'acme-stripes' with a result whose "
                            "to_dict() is not a dict")


def test_benchmark_commands_dispatch_through_the_registry():
    import harness.plugins as plugins
    from click.testing import CliRunner

    from harness.cli import cli

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    pm = get_plugin_manager()
    pm.register(_BenchPlugin(), name="acme")
    try:
        plugins._REGISTRY = Registry(pm)
        run = CliRunner().invoke
        ambiguous = run(cli, ["benchmark", "query", arch])
        query = run(cli, ["benchmark", "query", "--name", "acme-bench", arch])
        unknown_name = run(cli, ["benchmark", "query", "--name", "acme-bech", arch])
        convert = run(cli, ["benchmark", "convert", "--name", "acme-bench", "a.pth", "b.csv"])
    finally:
        plugins._REGISTRY = None
    assert ambiguous.exit_code == 2
    assert "more than one benchmark is installed: pass --name, one of acme-bench, nb201" in ambiguous.output
    assert query.exit_code == 0, query.output
    assert "  dataset:        acme-stripes" in query.output and "  test accuracy:  93.0000" in query.output
    assert "  source:         acme table v1" in query.output
    assert unknown_name.exit_code == 2 and "'acme-bech'" in unknown_name.output and "nb201" in unknown_name.output
    assert convert.exit_code == 2
    assert "benchmark 'acme-bench' has no converter; benchmarks that convert: nb201" in convert.output


# ---------------------------------------------------------------------------------------------------------
# The second example distribution: one of each kind (space, dataset, optimizer, selector, cell type), from
# the docs' contract alone, pip-installed like any third party's


def _without(cls, member: str):
    """``cls`` as its author would have written it had they forgotten ``member`` (defined on the class)."""
    return type(cls.__name__, cls.__bases__, {k: v for k, v in vars(cls).items() if k != member})


def test_the_toolkit_example_installs_runs_and_each_missing_method_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    example = ROOT / "examples" / "harness-example-toolkit"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(example)], check=True, capture_output=True, text=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--plugin", "toy-nas", "--space", "ring3",
                          "--dataset", "toy-bars", "--preset", "smoke", "--quiet", "--store", str(tmp_path / "r.sqlite")],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    from tests.runtable import run_rows

    (fields,) = run_rows(run.stdout)
    assert fields[1:5] == ["completed", "toy-nas", "ring3", "toy-bars"] and fields[7].startswith("ring3:")
    assert "none" not in fields[7]  # its selector never picks none
    from harness.store import ResultStore

    (rec,) = ResultStore(tmp_path / "r.sqlite").records()
    assert rec.metrics["source"] == "retrain" and rec.search["param_free"] == sum(
        op != "conv_3x3" for op in fields[7][len("ring3:"):].split(","))  # the space's own summary
    assert rec.plugins["harness-example-toolkit"] == "0.1.0"

    # the same classes, each missing one required method, against the public checks
    sys.path.insert(0, str(site))
    try:
        from harness_example_toolkit import plugin as tk
    finally:
        sys.path.remove(str(site))
    space = tk.Ring3Space()
    testing.check_space(space, plugin="toolkit")
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_optimizer(_without(tk.PlainSGD, "step"), tk.PlainSGDConfig(), space=space, name="plain-sgd",
                                plugin="toolkit")
    assert _one_line(e) == "plugin 'toolkit': optimizer 'plain-sgd' lacks step (harness.api.BilevelOptimizer)"
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_selector(_without(tk.NoNoneArgmax, "select"), tk.NoNoneConfig(), space=space,
                               name="no-none-argmax", plugin="toolkit")
    assert _one_line(e) == "plugin 'toolkit': selector 'no-none-argmax' lacks select (harness.api.Selector)"
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_cell_type(_without(tk.GatedCell, "build"), tk.GatedConfig(), space=space, name="gated",
                                plugin="toolkit")
    assert _one_line(e) == "plugin 'toolkit': cell type 'gated' lacks build (harness.api.CellType)"
    # a space is a SearchSpace: one that forgets an abstract method cannot be built, and the plugin hook
    # that tries is refused in one line while everything else loads
    forgetful = _without(tk.Ring3Space, "validate")

    class Forgetful:
        @hookimpl
        def harness_register_spaces(self, register):
            register(forgetful())

    pm = get_plugin_manager()
    pm.register(Forgetful(), name="toolkit-forgetful")
    registry = Registry(pm)
    assert registry.refusals_of("toolkit-forgetful") == [
        "plugin 'toolkit-forgetful': harness_register_spaces failed: TypeError: Can't instantiate abstract class "
        "Ring3Space with abstract method validate"]
    assert "darts" in registry.spaces and "darts" in registry.methods
    with pytest.raises(HarnessError, match="unknown space 'ring3'; valid choices: .*; and plugin 'toolkit-forgetful': "
                                           "harness_register_spaces failed: TypeError"):
        registry.space("ring3")
    # a space written without the base class is checked member by member
    duck = type("Duck", (), {k: getattr(tk.Ring3Space(), k) for k in testing.SPACE_MEMBERS if k != "validate"})
    with pytest.raises(testing.ConformanceError) as e:
        testing.check_space(duck(), plugin="toolkit")
    assert _one_line(e) == "plugin 'toolkit': space 'ring3' lacks validate (harness.spaces.SearchSpace)"
    pm = get_plugin_manager(load_entrypoints=False)

    class Broken:  # the dataset registered with a loader that is not a function
        @hookimpl
        def harness_register_datasets(self, register):
            register(tk.BARS, "toy_bars.npz")

    pm.register(Broken(), name="toolkit")
    assert Registry(pm).refused[("dataset", "toy-bars")] == \
        "plugin 'toolkit': dataset 'toy-bars' has a loader that is not callable"
