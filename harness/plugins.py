"""The plugin manager and the registry of everything plugins register.

``get_plugin_manager()`` is the one place plugins are loaded: entry points of group ``harness``
(built-in plugins included, found exactly as a third party's), then ``check_pending()`` so that a
misspelt hook fails loudly. ``load_registry()`` calls the registration hooks once and returns a
``Registry``: a small typed facade the rest of the harness uses instead of calling hooks itself.

Environment switches (as pytest and llm have them):

* ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1`` -- load no entry points (tests register plugins by hand).
* ``HARNESS_PLUGINS=core,darts`` -- load only these entry points.
* ``HARNESS_TRACE_PLUGINS=1`` -- print every hook call to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness import hookspecs
from harness.api import COMPONENT_KINDS, ComponentInfo, MethodInfo
from harness.errors import HarnessError, unknown

GROUP = "harness"
hookimpl = pluggy.HookimplMarker(GROUP)

_KIND_HOOKS = {
    "sampler": "harness_register_samplers",
    "optimizer": "harness_register_optimizers",
    "selector": "harness_register_selectors",
    "cell": "harness_register_cell_types",
}


def get_plugin_manager(load_entrypoints: bool | None = None) -> pluggy.PluginManager:
    """Build a plugin manager with the ``harness`` hook specs and the installed plugins."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    pm.harness_load_errors = {}  # entry-point name -> why it could not be loaded (Registry.refused)
    pm.harness_dists = {}  # entry-point name -> (distribution, version)
    if load_entrypoints:
        from importlib import metadata

        allowed = os.environ.get("HARNESS_PLUGINS")
        # (entry point, its distribution), as pluggy's load_setuptools_entrypoints walks them
        eps = [(ep, dist) for dist in metadata.distributions() for ep in dist.entry_points if ep.group == GROUP]
        if allowed:
            names = {n.strip() for n in allowed.split(",") if n.strip()}
            available = {ep.name for ep, _ in eps}
            missing = names - available
            if missing:
                raise unknown("plugin in HARNESS_PLUGINS", sorted(missing)[0], available)
            eps = [(ep, dist) for ep, dist in eps if ep.name in names]
        for ep, dist in eps:
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken install of one plugin must not take the others down
                why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
                pm.harness_load_errors[ep.name] = (f"plugin {ep.name!r} (entry point {ep.value!r}) could not be "
                                                   f"loaded: {why}")
                print(f"harness: {pm.harness_load_errors[ep.name]}; the other plugins load", file=sys.stderr)
                continue
            pm.register(plugin, name=ep.name)
            pm.harness_dists[ep.name] = (dist.metadata["Name"], dist.version)
    if os.environ.get("HARNESS_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    pm.check_pending()
    return pm


@dataclass(frozen=True)
class BenchmarkInfo:
    name: str
    opener: Any  # (path[, trust=True]) -> benchmark with .datasets and .query(arch, dataset)
    spaces: tuple[str, ...]
    plugin: str = ""
    doc: str = ""
    datasets: tuple[str, ...] = ()  # the datasets it answers for: runs on them are evaluated by a query
    default_path: Any = None  # () -> the file to open when the user names none, or None
    converter: Any = None  # (official, output, trust=False) -> rows written: `harness benchmark convert`


@dataclass(frozen=True)
class DatasetEntry:
    info: Any  # harness.data.DatasetInfo
    loader: Any  # (data_dir, download) -> (train_x, train_y, test_x, test_y)
    plugin: str = ""
    doc: str = ""


@dataclass(frozen=True)
class ExecutorInfo:
    name: str
    factory: Any  # factory(harness.executors.ExecutorOptions) -> executor
    plugin: str
    doc: str = ""


@dataclass(frozen=True)
class TrackerInfo:
    name: str
    plugin: str
    doc: str = ""
    available: Any = None  # () -> None where it can run here, else why not

    def why_not(self) -> str | None:
        return self.available() if callable(self.available) else None


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)


class Registry:
    """Everything the installed plugins register, by kind and name."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.components: dict[str, dict[str, ComponentInfo]] = {k: {} for k in COMPONENT_KINDS}
        self.spaces: dict[str, Any] = {}
        self.benchmarks: dict[str, BenchmarkInfo] = {}
        self.datasets: dict[str, DatasetEntry] = {}
        self.methods: dict[str, MethodInfo] = {}
        self.executors: dict[str, ExecutorInfo] = {}
        self.trackers: dict[str, TrackerInfo] = {}
        self.plugins: dict[str, PluginInfo] = {}
        # (kind, name) -> the one line saying why a registration was refused (harness.testing)
        self.refused: dict[tuple[str, str], str] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self._refused_by: dict[tuple[str, str], str] = {}  # (kind, name) -> the plugin refused
        self._checked: dict[tuple, Any] = {}  # check()'s key -> the component it built
        for name, line in getattr(pm, "harness_load_errors", {}).items():  # entry points that failed to import
            self.refused[("plugin", name)] = line
            self._refused_by[("plugin", name)] = name
        dists = getattr(pm, "harness_dists", {})  # get_plugin_manager loads the entry points and records these
        for name, plugin in pm.list_name_plugin():
            dist = dists.get(name)
            self.plugins[name] = PluginInfo(
                name=name,
                distribution=dist[0] if dist else getattr(plugin, "__name__", name),
                version=dist[1] if dist else "unpackaged",
            )
        self._collect()

    # -- registration ---------------------------------------------------------------------------

    def _claim(self, kind: str, name: str, plugin: str) -> None:
        key = (kind, name)
        if key in self._owner:
            raise HarnessError(
                f"{kind} {name!r} is registered twice: by plugin {self._owner[key]!r} and by plugin {plugin!r}"
            )
        self._owner[key] = plugin
        self.plugins[plugin].registers.setdefault(kind, []).append(name)

    def _each_impl(self, hook_name: str):
        """(plugin, its hook function) per implementation; a hook that raises (a plugin's bug: a space
        class missing an abstract method, an import error) is refused in one line and the other plugins,
        and what the hook registered before it raised, still load."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            yield impl.plugin_name, self._guarded(impl.plugin_name, hook_name, impl.function)

    def _guarded(self, plugin: str, hook_name: str, fn):
        def call(**kwargs):
            try:
                fn(**kwargs)
            except HarnessError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure inside a plugin's hook is the plugin's
                self._refused_by[("hook", f"{plugin}.{hook_name}")] = plugin
                self.refused[("hook", f"{plugin}.{hook_name}")] = (
                    f"plugin {plugin!r}: {hook_name} failed: {type(exc).__name__}: {' '.join(str(exc).split())}")
        return call

    def _collect(self) -> None:
        for kind, hook_name in _KIND_HOOKS.items():
            for plugin, fn in self._each_impl(hook_name):
                def register(name, factory, config, doc="", presets=None, _kind=kind, _plugin=plugin):
                    if self._refuses(_kind, name, _plugin, lambda: _check_registration(
                            _kind, name, _plugin, factory, config, presets)):
                        return
                    self._claim(_kind, name, _plugin)
                    self.components[_kind][name] = ComponentInfo(
                        _kind, name, factory, config, plugin=_plugin, doc=doc or (factory.__doc__ or ""),
                        presets={k: dict(v) for k, v in (presets or {}).items()},
                    )
                fn(register=register)
        for plugin, fn in self._each_impl("harness_register_spaces"):
            def register_space(space, _plugin=plugin):
                from harness.testing import require_members

                name = str(getattr(space, "name", space))
                if self._refuses("space", name, _plugin, lambda: require_members(space, "space", name, _plugin)):
                    return
                self._claim("space", space.name, _plugin)
                self.spaces[space.name] = space
            fn(register=register_space)
        for plugin, fn in self._each_impl("harness_register_benchmarks"):
            def register_benchmark(name, opener, spaces, doc="", datasets=(), default_path=None, converter=None,
                                   _plugin=plugin):
                bad = ("an opener that is not callable" if not callable(opener) else
                       "a default_path that is not callable" if default_path is not None and not callable(default_path)
                       else "a converter that is not callable" if converter is not None and not callable(converter)
                       else None)
                if bad and self._refuses("benchmark", name, _plugin, f"has {bad}"):
                    return
                self._claim("benchmark", name, _plugin)
                self.benchmarks[name] = BenchmarkInfo(name, opener, tuple(spaces), _plugin, doc, tuple(datasets),
                                                      default_path, converter)
            fn(register=register_benchmark)
        for plugin, fn in self._each_impl("harness_register_datasets"):
            def register_dataset(info, loader, doc="", _plugin=plugin):
                from harness.data import DatasetInfo

                name = str(getattr(info, "name", info))
                bad = ("info that is not a harness.data.DatasetInfo" if not isinstance(info, DatasetInfo) else
                       "a loader that is not callable" if not callable(loader) else None)
                if bad and self._refuses("dataset", name, _plugin, f"has {bad}"):
                    return
                self._claim("dataset", name, _plugin)
                self.datasets[name] = DatasetEntry(info, loader, _plugin, doc or info.description)
            fn(register=register_dataset)
        for plugin, fn in self._each_impl("harness_register_executors"):
            def register_executor(name, factory, doc="", _plugin=plugin):
                self._claim("executor", name, _plugin)
                self.executors[name] = ExecutorInfo(name, factory, _plugin, doc)
            fn(register=register_executor)
        for plugin, fn in self._each_impl("harness_register_trackers"):
            def register_tracker(name, doc="", available=None, _plugin=plugin):
                self._claim("tracker", name, _plugin)
                self.trackers[name] = TrackerInfo(name, _plugin, doc, available)
            fn(register=register_tracker)
        for plugin, fn in self._each_impl("harness_register_methods"):
            def register_method(info: MethodInfo, _plugin=plugin):
                self._claim("method", info.name, _plugin)
                self.methods[info.name] = MethodInfo(**{**info.__dict__, "plugin": _plugin})
            fn(register=register_method)

    def _refuses(self, kind: str, name: str, plugin: str, problem) -> bool:
        """Whether a registration is refused: ``problem`` is what is wrong with it (words), or a check to
        run (a ConformanceError from it is the problem). A refusal is kept in ``refused`` and said when
        the name is asked for; the rest of the plugins still load."""
        from harness.testing import ConformanceError, kind_label

        self._refused_by[(kind, name)] = plugin
        if callable(problem):
            try:
                problem()
            except ConformanceError as exc:
                self.refused[(kind, name)] = str(exc)
                return True
            del self._refused_by[(kind, name)]
            return False
        self.refused[(kind, name)] = f"plugin {plugin!r}: {kind_label(kind)} {name!r} {problem}"
        return True

    def _not_registered(self, kind: str, name: str, table) -> HarnessError:
        """Why ``name`` is not in ``table``: its refusal, or the valid choices."""
        if (kind, name) in self.refused:
            return HarnessError(f"{self.refused[(kind, name)]}; it was not registered")
        error = unknown(kind, name, table)
        failed = [line for (k, hook), line in sorted(self.refused.items())
                  if k == "hook" and hook.split(".")[-1].startswith(f"harness_register_{kind}")]
        return HarnessError(f"{error}; and {'; '.join(failed)}") if failed else error

    def check(self, kind: str, name: str, space=None, config=None):
        """The quick conformance check (``harness.testing.check_component(deep=False)``) of a component a
        grid is about to use, with ``config`` (default: its own) on ``space``; returns the component built.
        Once per (kind, name, config, space, op set) per process."""
        from harness.testing import check_component

        # a sampler is built on the grid's space (its alpha shapes are the space's); the other kinds on
        # the toy supernet
        key = (kind, name, repr(config)) + ((getattr(space, "name", None), getattr(space, "op_set", None))
                                           if kind == "sampler" else ())
        if key not in self._checked:
            self._checked[key] = check_component(self.component(kind, name), space=space, config=config,
                                                 deep=False)
        return self._checked[key]

    def check_run(self, components: dict[str, str], hparams: dict[str, Any], space) -> None:
        """One run's components checked alone (:meth:`check`) and together: what each declares it needs of
        the others (``requires``, ``harness.testing.check_together``). A mismatch names both components
        and the registered ones of the other kind that would do."""
        from harness.testing import ConformanceError, Mismatch, check_together, kind_label

        built = {kind: self.check(kind, name, space, hparams.get(kind)) for kind, name in components.items()}
        plugins = {kind: self.component(kind, name).plugin for kind, name in components.items()}
        try:
            check_together({**built, "space": space}, dict(components), plugins)
        except Mismatch as exc:
            fits = self._fitting(exc.needed, built, components, space)
            fitting = f"; registered {kind_label(exc.needed)}s that fit: {', '.join(fits)}" if fits else ""
            raise ConformanceError(f"{exc}{fitting}") from None

    def _fitting(self, other: str, built: dict, components: dict[str, str], space) -> list[str]:
        """The registered components (or spaces) of kind ``other`` that would satisfy the run's others."""
        from harness.testing import ConformanceError, check_together

        table = self.spaces if other == "space" else self.components[other]
        fits = []
        for name in table:
            try:
                if other == "space":
                    check_together({**built, "space": self.spaces[name]}, dict(components))
                else:
                    obj = self.check(other, name, space)
                    check_together({**built, other: obj, "space": space}, {**components, other: name})
            except ConformanceError:
                continue
            fits.append(name)
        return sorted(fits)

    def owner(self, kind: str, name: str) -> str:
        """The plugin that registered ``name`` of ``kind`` ("space", "dataset", "sampler", ...)."""
        return self._owner[(kind, name)]

    def refusals_of(self, plugin: str) -> list[str]:
        """The lines saying which of ``plugin``'s registrations were refused, and why."""
        return sorted(line for key, line in self.refused.items() if self._refused_by.get(key) == plugin)

    # -- look-ups -------------------------------------------------------------------------------

    def component(self, kind: str, name: str) -> ComponentInfo:
        if kind not in self.components:
            raise unknown("component kind", kind, COMPONENT_KINDS)
        table = self.components[kind]
        if name not in table:
            raise self._not_registered(kind, name, table)
        return table[name]

    def dataset(self, name: str) -> DatasetEntry:
        if name not in self.datasets:
            raise self._not_registered("dataset", name, self.datasets)
        return self.datasets[name]

    def executor(self, name: str) -> ExecutorInfo:
        if name not in self.executors:
            raise unknown("executor", name, self.executors)
        return self.executors[name]

    def tracker(self, name: str) -> TrackerInfo:
        """A registered tracker that can run here, or an error naming the valid ones (or why not)."""
        if name not in self.trackers:
            raise unknown("tracker", name, self.trackers)
        why = self.trackers[name].why_not()
        if why is not None:
            raise HarnessError(f"tracker {name!r} cannot run here: {why}")
        return self.trackers[name]

    def method(self, name: str) -> MethodInfo:
        if name not in self.methods:
            raise unknown("plugin/method", name, self.methods)
        return self.methods[name]

    def space(self, name: str, op_set: str = "all"):
        """The space ``name``, searching op set ``op_set`` (``SearchSpace.with_op_set``)."""
        if name not in self.spaces:
            raise self._not_registered("space", name, self.spaces)
        return self.spaces[name].with_op_set(op_set)

    def benchmark_for(self, space: str) -> BenchmarkInfo | None:
        for info in self.benchmarks.values():
            if space in info.spaces:
                return info
        return None

    def plugin_versions(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Distribution name -> version of the given plugins (all when None)."""
        chosen = self.plugins.values() if names is None else (self.plugins[n] for n in names)
        return {p.distribution: p.version for p in chosen}

    def plugins_of(self, method: MethodInfo, components: dict[str, str]) -> set[str]:
        """The plugins that a run of ``method`` with ``components`` uses (the method's own included)."""
        used = {method.plugin}
        for kind, name in components.items():
            used.add(self.components[kind][name].plugin)
        return used


def _check_registration(kind: str, name: str, plugin: str, factory, config, presets=None) -> None:
    """What registration checks without building anything: a callable factory, a frozen dataclass config
    whose fields all have defaults (``harness.testing.check_config``), and ``presets`` naming reduced
    presets and keys of that config with valid values."""
    from harness.config import PRESETS, apply
    from harness.testing import ConformanceError, check_config, kind_label

    label = kind_label(kind)
    if not callable(factory):
        raise ConformanceError(f"plugin {plugin!r}: {label} {name!r} has a factory that is not callable")
    check_config(config, kind=label, name=name, plugin=plugin)
    reduced = [p for p in PRESETS if p != "paper"]
    for preset, settings in (presets or {}).items():
        if preset not in reduced:
            raise ConformanceError(f"plugin {plugin!r}: {label} {name!r} has settings for preset {preset!r}; "
                                   f"a component's presets are the reduced ones: {', '.join(reduced)}")
        try:
            apply(config, settings, f"{label} {name!r} preset {preset!r}")
        except HarnessError as exc:
            raise ConformanceError(f"plugin {plugin!r}: {exc}") from None


_REGISTRY: Registry | None = None


def load_registry(refresh: bool = False) -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = Registry(get_plugin_manager())
    return _REGISTRY
