"""Conformance checks for plugin components (issue 14): what the host reads from each kind, checked on a toy
configuration, with one line naming the plugin, the component and what is missing.

An author runs them against their own plugin (``pytest``), the built-in plugins' tests use them, and the
harness runs them on every component a grid uses before its first run starts (``harness plugins --check``
runs them on everything installed)::

    from harness.testing import check_sampler, check_optimizer, check_selector, check_cell_type, check_space
    from harness.testing import check_benchmark  # check_benchmark(opener, path, arch) on a file of yours

    def test_my_sampler_conforms():
        check_sampler(MySampler, MyConfig())            # a class or any factory(config, space=)

Each ``check_*`` returns nothing when the component conforms and raises :class:`ConformanceError` (a
``HarnessError``) otherwise. The toy configuration: a 1-channel 8x8 input, 4 classes, a 4-channel supernet
of 3 cells on ``space`` (default: the built-in NAS-Bench-201 cell space, 6 edges of 5 ops), with the
core's softmax sampler, mixed cell and first-order optimizer standing in for the kinds not under test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError

TOY_SHAPE = (1, 4, 8)  # in_channels, num_classes, resolution
TOY_CHANNELS, TOY_LAYERS, TOY_BATCH = 4, 3, 6

# what the host calls or reads on each kind (the Protocols in harness.api, the ABC in harness.spaces)
SAMPLER_MEMBERS = ("forward", "probabilities", "arch_parameters", "set_progress", "regularization")
OPTIMIZER_MEMBERS = ("needs_val_batch", "step", "set_progress")
SELECTOR_MEMBERS = ("select",)
CELL_MEMBERS = ("build",)
SPACE_MEMBERS = ("name", "family", "cell_kinds", "edges", "n_inputs", "n_nodes", "edge_ops", "n_ops",
                 "build_search_network", "derive", "parse", "validate", "build_eval_network", "eval_defaults",
                 "op_sets", "with_op_set", "search_defaults", "eval_protocols", "eval_protocol", "ops_summary",
                 "describe")


# kind label -> (its members, where they are written down); the one table every "lacks ..." line reads
CONTRACTS = {
    "sampler": (SAMPLER_MEMBERS, "harness.api.Sampler"),
    "optimizer": (OPTIMIZER_MEMBERS, "harness.api.BilevelOptimizer"),
    "selector": (SELECTOR_MEMBERS, "harness.api.Selector"),
    "cell type": (CELL_MEMBERS, "harness.api.CellType"),
    "space": (SPACE_MEMBERS, "harness.spaces.SearchSpace"),
}


class ConformanceError(HarnessError):
    """A component does not do what the host needs of its kind."""


class Mismatch(ConformanceError):
    """Two components of one run that do not fit together; ``needed`` is the kind that falls short."""

    def __init__(self, message: str, needed: str):
        super().__init__(message)
        self.needed = needed


def kind_label(kind: str) -> str:
    """A registry kind in words ("cell" -> "cell type")."""
    return {"cell": "cell type"}.get(kind, kind)


def require_members(obj, kind: str, name: str | None = None, plugin: str | None = None) -> None:
    """ConformanceError naming every member of ``kind``'s contract (:data:`CONTRACTS`) ``obj`` lacks."""
    members, where = CONTRACTS[kind_label(kind)]
    if missing := [m for m in members if not hasattr(obj, m)]:
        raise _fail(kind_label(kind), name, plugin, f"lacks {', '.join(missing)} ({where})")


def _who(kind: str, name: str | None, plugin: str | None) -> str:
    where = f"plugin {plugin!r}: " if plugin else ""
    return f"{where}{kind} {name!r}" if name else f"{where}{kind}"


def _fail(kind, name, plugin, what: str) -> ConformanceError:
    return ConformanceError(f"{_who(kind, name, plugin)} {what}")


def _call(kind, name, plugin, what: str, fn: Callable[[], Any]):
    """``fn()``, or a ConformanceError saying which call failed and how."""
    try:
        return fn()
    except ConformanceError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin's code is the plugin's
        raise _fail(kind, name, plugin, f"failed in {what}: {type(exc).__name__}: "
                                        f"{' '.join(str(exc).split())[:200]}") from None


def check_config(config_cls, *, kind: str, name: str | None = None, plugin: str | None = None) -> None:
    """A component's config: a frozen dataclass whose every field has a default (the paper's setting)."""
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise _fail(kind, name, plugin, f"config {config_cls!r} is not a dataclass class")
    if not config_cls.__dataclass_params__.frozen:
        raise _fail(kind, name, plugin, f"config {config_cls.__name__} is not frozen (@dataclass(frozen=True))")
    _call(kind, name, plugin, f"{config_cls.__name__}() (every field needs a default)", config_cls)


def toy_space(space=None):
    """``space`` itself, or the built-in NAS-Bench-201 cell space."""
    if space is not None:
        return space
    from harness.spaces.nb201 import NB201Space

    return NB201Space()


def _shape():
    from harness.spaces import NetShape

    return NetShape(*TOY_SHAPE)


def toy_batch(seed: int = 0):
    import torch

    from harness.api import Batch

    g = torch.Generator().manual_seed(seed)
    c, k, r = TOY_SHAPE
    return Batch(torch.randn(TOY_BATCH, c, r, r, generator=g), torch.randint(0, k, (TOY_BATCH,), generator=g))


def toy_supernet(space=None, sampler=None, cell_type=None):
    """A 3-cell, 4-channel supernet on ``space``; the core's softmax sampler and mixed cell by default."""
    import torch

    from harness.blocks import MixedCell, MixedConfig, SoftmaxConfig, SoftmaxSampler

    space = toy_space(space)
    torch.manual_seed(0)
    sampler = sampler if sampler is not None else SoftmaxSampler(SoftmaxConfig(), space=space)
    cell_type = cell_type if cell_type is not None else MixedCell(MixedConfig())
    return space.build_search_network(sampler, cell_type, TOY_CHANNELS, TOY_LAYERS, _shape())


def _make(factory, config, kind, name, plugin, **kwargs):
    return _call(kind, name, plugin, f"its factory({type(config).__name__}(), "
                                     f"{', '.join(f'{k}=...' for k in kwargs)})".replace("(, ", "(")
                 .replace(", )", ")"), lambda: factory(config, **kwargs))


# ---------------------------------------------------------------------------------------------------------


def check_sampler(factory, config, *, space=None, name: str | None = None, plugin: str | None = None):
    """``factory(config, space=)`` builds an ``nn.Module`` with the Sampler members; its forward gives an
    ``ArchWeights`` with an (edges, ops) weight per cell kind (and the op indices when it declares
    ``single_path``); ``probabilities()`` the same shapes; ``arch_parameters()`` tensors;
    ``regularization()`` None or a scalar tensor. Returns the sampler."""
    import torch
    from torch import nn

    from harness.api import ArchWeights

    kind = "sampler"
    space = toy_space(space)
    s = _make(factory, config, kind, name, plugin, space=space)
    if not isinstance(s, nn.Module):
        raise _fail(kind, name, plugin, f"is a {type(s).__name__}, not a torch.nn.Module (the supernet holds it "
                                        f"as a submodule so that .to(device) and state_dict() reach it)")
    require_members(s, kind, name, plugin)
    _call(kind, name, plugin, "set_progress(0, 2)", lambda: s.set_progress(0, 2))
    arch = _call(kind, name, plugin, "forward()", s)
    if not isinstance(arch, ArchWeights):
        raise _fail(kind, name, plugin, f"forward() returned {type(arch).__name__}, not harness.api.ArchWeights")
    want = (len(space.edges), space.n_ops)
    probs = _call(kind, name, plugin, "probabilities()", s.probabilities)
    for label, table in (("forward().weights", arch.weights), ("probabilities()", probs)):
        if not isinstance(table, dict) or set(table) != set(space.cell_kinds):
            raise _fail(kind, name, plugin, f"{label} has keys {sorted(table) if isinstance(table, dict) else table!r}"
                                            f", not the space's cell kinds {list(space.cell_kinds)}")
        for k, t in table.items():
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != want:
                raise _fail(kind, name, plugin, f"{label}[{k!r}] has shape "
                                                f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}"
                                                f", not (edges, ops) = {want}")
    if getattr(s, "single_path", False) and (arch.index is None or arch.host_index is None):
        raise _fail(kind, name, plugin, "declares single_path but its forward() gives no index/host_index "
                                        "(the op each edge runs)")
    if getattr(s, "single_path", False):
        # the eager single-path cell reads the host lists, the fast one the device tensors: they must agree
        for k in space.cell_kinds:
            if [int(v) for v in arch.index[k].tolist()] != [int(v) for v in arch.host_index[k]]:
                raise _fail(kind, name, plugin, f"forward().index[{k!r}] and host_index[{k!r}] name different ops")
        if (arch.host_active is None) != (arch.active is None):
            raise _fail(kind, name, plugin, "forward() gives one of host_active/active without the other (the "
                                            "eager single-path cell skips edges by the first, the fast one by "
                                            "the second)")
        if arch.active is not None and any(
                [bool(v) for v in arch.active[k].tolist()] != list(map(bool, arch.host_active[k]))
                for k in space.cell_kinds):
            raise _fail(kind, name, plugin, "forward().active and host_active switch off different edges")
    params = _call(kind, name, plugin, "arch_parameters()", s.arch_parameters)
    if not isinstance(params, (list, tuple)) or not all(isinstance(p, torch.Tensor) for p in params):
        raise _fail(kind, name, plugin, "arch_parameters() is not a list of tensors")
    reg = _call(kind, name, plugin, "regularization()", s.regularization)
    if reg is not None and not (isinstance(reg, torch.Tensor) and reg.numel() == 1):
        raise _fail(kind, name, plugin, "regularization() is neither None nor a scalar tensor")
    return s


def check_cell_type(factory, config, *, space=None, name: str | None = None, plugin: str | None = None):
    """``factory(config)`` has ``build(spec)``; a supernet of it (with the core's Gumbel sampler when it
    requires a ``single_path`` sampler, else the softmax one) maps a batch to (batch, classes) logits whose
    gradient reaches every architecture parameter. Returns the cell type."""
    from harness.blocks import GumbelConfig, GumbelSampler, SoftmaxConfig, SoftmaxSampler

    kind = "cell type"
    space = toy_space(space)
    cell = _make(factory, config, kind, name, plugin)
    require_members(cell, kind, name, plugin)
    needs = requirements(cell, kind="cell", name=name, plugin=plugin).get("sampler", {})
    sampler = (GumbelSampler(GumbelConfig(), space=space) if "single_path" in needs
               else SoftmaxSampler(SoftmaxConfig(), space=space))
    net = _call(kind, name, plugin, f"{space.name}.build_search_network", lambda: toy_supernet(space, sampler, cell))
    x = toy_batch().x
    logits = _call(kind, name, plugin, "the supernet's forward", lambda: net(x))
    if tuple(getattr(logits, "shape", ())) != (TOY_BATCH, TOY_SHAPE[1]):
        raise _fail(kind, name, plugin, f"gives a supernet whose output is {getattr(logits, 'shape', logits)!r},"
                                        f" not (batch, classes) logits")
    _call(kind, name, plugin, "backward", lambda: logits.sum().backward())
    if any(a.grad is None for a in net.sampler.arch_parameters()):
        raise _fail(kind, name, plugin, "cuts the gradient to the architecture parameters (an alpha got none)")
    return cell


def check_optimizer(factory, config, *, space=None, name: str | None = None, plugin: str | None = None):
    """``factory(config, net=, steps_per_epoch=, epochs=)`` has ``needs_val_batch`` (bool), ``step`` and
    ``set_progress``; one step returns a ``StepStats`` whose ``train_loss`` is a finite tensor and changes
    the weights; ``lr``, when present, is a number. Returns the optimizer."""
    import torch

    from harness.api import StepStats

    kind = "optimizer"
    net = toy_supernet(space)
    opt = _make(factory, config, kind, name, plugin, net=net, steps_per_epoch=2, epochs=2)
    require_members(opt, kind, name, plugin)
    _require_val_flag(opt, name, plugin)
    _call(kind, name, plugin, "set_progress(0, 2)", lambda: opt.set_progress(0, 2))
    before = [p.detach().clone() for p in net.weight_parameters()]
    stats = _call(kind, name, plugin, "step(net, train, val)",
                  lambda: opt.step(net, toy_batch(0), toy_batch(1) if opt.needs_val_batch else None))
    if not isinstance(stats, StepStats):
        raise _fail(kind, name, plugin, f"step() returned {type(stats).__name__}, not harness.api.StepStats")
    if not (isinstance(stats.train_loss, torch.Tensor) and bool(torch.isfinite(stats.train_loss).all())):
        raise _fail(kind, name, plugin, "step() gave no finite train_loss tensor (StepStats.train_loss)")
    if all(torch.equal(p, q) for p, q in zip(net.weight_parameters(), before)):
        raise _fail(kind, name, plugin, "step() left every network weight unchanged")
    if hasattr(opt, "lr") and not isinstance(opt.lr, (int, float)):
        raise _fail(kind, name, plugin, f"lr is {type(opt.lr).__name__}, not a number (the search log reads it)")
    return opt


def _require_val_flag(opt, name, plugin) -> None:
    if not isinstance(opt.needs_val_batch, bool):
        raise _fail("optimizer", name, plugin, f"needs_val_batch is {opt.needs_val_batch!r}, not a bool")


def check_selector(factory, config, *, space=None, name: str | None = None, plugin: str | None = None):
    """``factory(config)`` has ``select(net, ctx)``, which returns a genotype the space accepts
    (``space.validate``) and can read back from its string (``space.parse``). Returns the genotype."""
    from harness.api import SelectionContext
    from harness.blocks import BilevelConfig, FirstOrderBilevel

    kind = "selector"
    space = toy_space(space)
    sel = _make(factory, config, kind, name, plugin)
    require_members(sel, kind, name, plugin)
    net = toy_supernet(space)
    opt = FirstOrderBilevel(BilevelConfig(), net=net, steps_per_epoch=2, epochs=2)
    ctx = SelectionContext(space=space, val_batches=lambda: iter([toy_batch(1)]),
                           train_batches=lambda: iter([toy_batch(0)]), optimizer=opt, seed=0)
    genotype = _call(kind, name, plugin, "select(net, ctx)", lambda: sel.select(net, ctx))
    _call(kind, name, plugin, f"{space.name}.validate(its genotype)", lambda: space.validate(genotype))
    back = _call(kind, name, plugin, f"{space.name}.parse(its genotype's string)",
                 lambda: space.parse(genotype.to_string()))
    if back != genotype:
        raise _fail(kind, name, plugin, "returns a genotype that does not read back from its own string")
    return genotype


def check_space(space, *, plugin: str | None = None) -> None:
    """A search space has every member the host uses (``harness.spaces.SearchSpace``); a toy supernet on it
    runs, ``derive`` gives a genotype that ``validate`` accepts and ``parse`` reads back, and the derived
    network's forward returns ``(logits, aux)`` and has ``drop_path_prob`` (the retraining sets it)."""
    kind = "space"
    name = getattr(space, "name", None)
    require_members(space, kind, name, plugin)
    net = _call(kind, name, plugin, "build_search_network", lambda: toy_supernet(space))
    logits = _call(kind, name, plugin, "the supernet's forward", lambda: net(toy_batch().x))
    if tuple(getattr(logits, "shape", ())) != (TOY_BATCH, TOY_SHAPE[1]):
        raise _fail(kind, name, plugin, "builds a supernet whose output is not (batch, classes) logits")
    probs = net.sampler.probabilities()
    genotype = _call(kind, name, plugin, "derive(probabilities)", lambda: space.derive(probs))
    _call(kind, name, plugin, "validate(derived genotype)", lambda: space.validate(genotype))
    if _call(kind, name, plugin, "parse(genotype string)", lambda: space.parse(genotype.to_string())) != genotype:
        raise _fail(kind, name, plugin, "parse(to_string()) does not give the derived genotype back")
    eval_net = _call(kind, name, plugin, "build_eval_network",
                     lambda: space.build_eval_network(genotype, TOY_CHANNELS, TOY_LAYERS, _shape()))
    if not hasattr(eval_net, "drop_path_prob"):
        raise _fail(kind, name, plugin, "builds an evaluation network without drop_path_prob")
    out = _call(kind, name, plugin, "the evaluation network's forward", lambda: eval_net(toy_batch().x))
    if not (isinstance(out, tuple) and len(out) == 2):
        raise _fail(kind, name, plugin, "builds an evaluation network whose forward is not (logits, aux)")


def check_benchmark(opener, path, arch, *, datasets=(), name: str | None = None, plugin: str | None = None):
    """``opener(path)`` opens the benchmark file; for each of ``datasets`` (default: the opened benchmark's
    own ``datasets``) ``query(arch, dataset)`` gives a result with a numeric ``test_accuracy``, a
    ``valid_accuracy`` that is a number or None, and ``to_dict()`` (what a record keeps). Returns the
    results by dataset."""
    kind = "benchmark"
    bench = _call(kind, name, plugin, f"its opener({str(path)!r})", lambda: opener(path))
    if missing := [m for m in ("datasets", "query") if not hasattr(bench, m)]:
        raise _fail(kind, name, plugin, f"opens an object that lacks {', '.join(missing)}")
    results = {}
    for dataset in datasets or tuple(bench.datasets):
        res = _call(kind, name, plugin, f"query(arch, {dataset!r})", lambda d=dataset: bench.query(arch, d))
        if not isinstance(getattr(res, "test_accuracy", None), (int, float)):
            raise _fail(kind, name, plugin, f"answers {dataset!r} without a numeric test_accuracy")
        if getattr(res, "valid_accuracy", None) is not None and not isinstance(res.valid_accuracy, (int, float)):
            raise _fail(kind, name, plugin, f"answers {dataset!r} with a valid_accuracy that is not a number")
        if not hasattr(res, "valid_accuracy"):
            raise _fail(kind, name, plugin, f"answers {dataset!r} without valid_accuracy (None when it has none)")
        d = _call(kind, name, plugin, "the result's to_dict()", res.to_dict) if hasattr(res, "to_dict") else None
        if not isinstance(d, dict):
            raise _fail(kind, name, plugin, f"answers {dataset!r} with a result whose to_dict() is not a dict")
        results[dataset] = res
    return results


# ---------------------------------------------------------------------------------------------------------
# What one component needs of another


REQUIRABLE = ("sampler", "optimizer", "selector", "cell", "space")


def requirements(obj, *, kind: str, name: str | None = None, plugin: str | None = None) -> dict[str, dict]:
    """What ``obj`` declares it needs of the other components of a run, read from its ``requires``
    (a class attribute, or a property when it depends on the config): a mapping from a kind
    (``sampler``, ``optimizer``, ``selector``, ``cell``, ``space``) to either a tuple of attribute names
    the component of that kind must have (present and not None or False), or a dict of attribute name ->
    required value (a tuple, list or set: one of those values). Returned as kind -> {attribute: value or
    ``...`` for "present"}; a malformed declaration is a ConformanceError."""
    raw = getattr(obj, "requires", None) or {}
    label = kind_label(kind)
    if not isinstance(raw, dict):
        raise _fail(label, name, plugin, f"declares requires = {raw!r}, not a dict of kind -> attributes")
    out: dict[str, dict] = {}
    for other, wanted in raw.items():
        if other not in REQUIRABLE:
            raise _fail(label, name, plugin, f"declares a requirement on {other!r}, which is not a kind of "
                                             f"component; valid: {', '.join(REQUIRABLE)}")
        if isinstance(wanted, dict):
            out[other] = dict(wanted)
        elif isinstance(wanted, (tuple, list)) and all(isinstance(a, str) for a in wanted):
            out[other] = {a: ... for a in wanted}
        else:
            raise _fail(label, name, plugin, f"declares requires[{other!r}] = {wanted!r}: expected a tuple of "
                                             f"attribute names or a dict of attribute -> value")
    return out


def _meets(target, attr: str, value) -> bool:
    have = getattr(target, attr, None)
    if value is ...:
        return have is not None and have is not False
    if isinstance(value, (tuple, list, set, frozenset)):
        return have in value
    return have == value


def _wanted(attr: str, value) -> str:
    if value is ...:
        return attr
    if isinstance(value, (tuple, list, set, frozenset)):
        return f"{attr} in ({', '.join(repr(v) for v in value)})"
    return f"{attr} = {value!r}"


def check_together(built: dict[str, Any], names: dict[str, str] | None = None,
                   plugins: dict[str, str] | None = None) -> None:
    """The components of one run (kind -> object; ``space`` -> the space) against what each declares it
    needs of the others (:func:`requirements`): a :class:`Mismatch` naming both components and what is
    missing, before the run starts. ``names``/``plugins`` (kind -> registered name / plugin) word it."""
    names, plugins = names or {}, plugins or {}

    def who(kind: str) -> str:
        if kind == "space":
            return f"space {getattr(built[kind], 'name', '?')!r}"
        where = f" (plugin {plugins[kind]!r})" if plugins.get(kind) else ""
        return f"{kind_label(kind)} {names.get(kind, type(built[kind]).__name__)!r}{where}"

    for kind, obj in built.items():
        if kind == "space":
            continue
        for other, wanted in requirements(obj, kind=kind, name=names.get(kind), plugin=plugins.get(kind)).items():
            if other not in built:
                continue
            unmet = [_wanted(a, v) for a, v in wanted.items() if not _meets(built[other], a, v)]
            if unmet:
                article = "an" if kind_label(other)[0] in "aeiou" else "a"
                raise Mismatch(f"{who(kind)} needs {article} {kind_label(other)} with {', '.join(unmet)}, which "
                               f"{who(other)} does not have; use another {kind_label(other)} with it", other)


class _OpTrace:
    """The aten operators a function dispatches, each as (name, its arguments' shapes, dtypes and non-tensor
    values), and the host reads among them (``.item()``, ``bool(tensor)``: ``_local_scalar_dense``). Not
    inside a torch optimizer's ``step``: on CUDA ``GraphedStep`` makes Adam capturable (its step count and
    bias correction on the device), which torch allows for CUDA tensors only, so on a CPU Adam reads its
    step count on the host and passes the bias correction as a scalar."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        trace = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if trace.in_optimizer or func.namespace == "profiler":  # (record_function's markers)
                    return func(*args, **(kwargs or {}))
                if func.overloadpacket.__name__ in ("_local_scalar_dense", "is_nonzero"):
                    trace.host_reads.append(str(func))
                trace.ops.append((str(func), trace.key(args), trace.key(kwargs or {})))
                return func(*args, **(kwargs or {}))

        self.mode, self.ops, self.host_reads, self.in_optimizer = Mode(), [], [], False

    def key(self, value):
        import torch

        if isinstance(value, torch.Tensor):
            return ("tensor", tuple(value.shape), value.dtype)
        if isinstance(value, (list, tuple)):
            return tuple(self.key(v) for v in value)
        if isinstance(value, dict):
            return tuple((k, self.key(v)) for k, v in sorted(value.items()))
        return repr(value)  # a scalar (lr, tau, eps, a chosen index): frozen into a real graph at its capture

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self.hooks = [register_optimizer_step_pre_hook(lambda *a: setattr(self, "in_optimizer", True)),
                      register_optimizer_step_post_hook(lambda *a: setattr(self, "in_optimizer", False))]
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()
        return self.mode.__exit__(*exc)


def _describe(op) -> str:
    name, args, kwargs = op
    return f"{name}{args}" + (f" {dict(kwargs)}" if kwargs else "")


def replay_checked(optimizer, warmup_steps: int = 1, who: str = "the step"):
    """``optimizer`` in a ``harness.graphs.GraphedStep`` whose capture, on any device, is checked instead of
    recorded: a replay reruns the step in its captured form (``harness.nn.groups.as_captured``) and checks
    what a real replay takes for granted, which rerunning the Python would otherwise hide. Every replay after
    a capture dispatches the operators the first one did, in the same order, with the same shapes, dtypes
    and non-tensor arguments (a real graph replays the kernels and the host values of its capture: a
    temperature, a learning rate, a path chosen in Python); none reads a device value on the host (a sync,
    which a capture refuses); the step's ``StepStats`` losses are tensors. A failure raises
    :class:`ConformanceError` naming ``who`` and the first difference. Not seen: the values inside tensors
    (a host-built tensor copied to the device each step), a capture's own restrictions (allocations on the
    host, unpinned copies): a GPU run says those."""
    from harness.graphs import GraphedStep
    from harness.nn import groups

    class ReplayChecked(GraphedStep):
        def _capture(self, fn, device):
            first: list = []

            def replay():
                import torch

                with _OpTrace() as now, groups.as_captured():
                    stats = fn()
                if now.host_reads:
                    raise ConformanceError(f"{who} reads a device value on the host ({now.host_reads[0]}, "
                                           f"{len(now.host_reads)} in all: .item(), bool(tensor), .tolist()), "
                                           "which a CUDA graph capture refuses; keep the decision on the device "
                                           "or make it in set_progress")
                if not first:
                    first.extend(now.ops)
                elif now.ops != first:
                    at = next((i for i, (a, b) in enumerate(zip(first, now.ops)) if a != b), min(len(first), len(now.ops)))
                    was = _describe(first[at]) if at < len(first) else "(the end)"
                    now_ = _describe(now.ops[at]) if at < len(now.ops) else "(the end)"
                    raise ConformanceError(
                        f"{who} dispatches other operators than at its capture ({len(now.ops)} against "
                        f"{len(first)}; operator {at}: {now_}, captured as {was}): a CUDA graph replays the "
                        "captured kernels and host values, so a host value or a path chosen in Python that "
                        "changes between steps would be frozen; keep it in a device tensor updated in place, "
                        "or change it only in set_progress")
                if not all(isinstance(v, torch.Tensor) or v is None
                           for v in (stats.train_loss, stats.val_loss, stats.train_correct)):
                    raise ConformanceError(f"{who} returns host numbers in its StepStats (a replay would "
                                           "return the captured ones): return device tensors")
                return stats

            return replay

    return ReplayChecked(optimizer, warmup_steps=warmup_steps)


def check_capturable(sampler=None, cell_type=None, optimizer=None, *, space=None, steps: int = 3,
                     epochs: int = 2):
    """A run of these components is captured in a CUDA graph on a GPU (each declares ``graph_capturable``,
    ``harness.graphs``): checked on any device by :func:`replay_checked` over ``epochs`` epochs of ``steps``
    steps (per epoch: ``set_progress``, one warm-up step, a capture, replays) on the toy supernet of
    ``space``, with the fast cell path on, as a CUDA run takes it. ``sampler``, ``cell_type``,
    ``optimizer``: ``(factory, config)`` pairs, or None for the core's softmax sampler, mixed cell and
    first-order optimizer. Raises :class:`ConformanceError` if the run would not be captured (naming
    why) or if a replay would not do what the step does; returns the checked step (``captures``,
    ``replays``)."""
    import torch

    from harness.blocks import BilevelConfig, FirstOrderBilevel
    from harness.graphs import why_not_graphed
    from harness.nn.cells import set_fast

    space = toy_space(space)
    built = {}
    for kind, given in (("sampler", sampler), ("cell type", cell_type)):
        if given is not None:
            factory, config = given
            built[kind] = _make(factory, config, kind, None, None, **({"space": space} if kind == "sampler" else {}))
    cell = built.get("cell type") or _core_cell()
    net = toy_supernet(space, built.get("sampler"), cell)
    set_fast(net, True)
    factory, config = optimizer if optimizer is not None else (FirstOrderBilevel, BilevelConfig())
    opt = _make(factory, config, "optimizer", None, None, net=net, steps_per_epoch=steps, epochs=epochs)
    names = f"sampler {type(net.sampler).__name__}, cell type {type(cell).__name__}, optimizer {type(opt).__name__}"
    why = why_not_graphed(device=torch.device("cuda"), sampler=net.sampler, cell_type=cell, optimizer=opt)
    if why is not None:
        raise ConformanceError(f"the step of {names} would not be captured on CUDA: {why}")
    step = replay_checked(opt, who=f"the captured step of {names}")
    for epoch in range(epochs):
        net.sampler.set_progress(epoch, epochs)
        step.set_progress(epoch, epochs)
        for i in range(steps):
            step.step(net, toy_batch(2 * i), toy_batch(2 * i + 1) if step.needs_val_batch else None)
    return step


def _core_cell():
    from harness.blocks import MixedCell, MixedConfig

    return MixedCell(MixedConfig())


_QUICK: dict[str, Any] = {}  # check_component(deep=False)'s toy supernet, built once per process

CHECKS = {"sampler": check_sampler, "optimizer": check_optimizer, "selector": check_selector,
          "cell": check_cell_type}


def check_component(info, *, space=None, config=None, deep: bool = True) -> None:
    """A registered component (``harness.api.ComponentInfo``) against its kind's checks, with its
    default config unless ``config`` is given. ``deep=False`` is what the harness does before a grid's
    first run (milliseconds): a sampler fully, on ``space``; any other kind built and its members
    checked, without a step or a selection. Returns the component built (None after a deep selector
    check, which returns nothing built)."""
    config = config if config is not None else info.config()
    if deep or info.kind == "sampler":
        built = CHECKS[info.kind](info.factory, config, space=space, name=info.name, plugin=info.plugin)
        return built if info.kind != "selector" else None  # check_selector returns its genotype
    kind = kind_label(info.kind)
    if info.kind == "optimizer":  # built on one toy supernet per process (it only reads its parameters)
        if "net" not in _QUICK:
            _QUICK["net"] = toy_supernet()
        obj = _make(info.factory, config, kind, info.name, info.plugin, net=_QUICK["net"],
                    steps_per_epoch=2, epochs=2)
    else:
        obj = _make(info.factory, config, kind, info.name, info.plugin)
    require_members(obj, kind, info.name, info.plugin)
    if info.kind == "optimizer":
        _require_val_flag(obj, info.name, info.plugin)
    requirements(obj, kind=info.kind, name=info.name, plugin=info.plugin)  # a malformed declaration fails here
    return obj
