"""Presets and the one place a run's configuration is resolved: space defaults (supernet, op set,
evaluation protocol for the dataset) -> method recipe (defaults, per-space defaults, per-preset and
per-space budgets) -> harness preset caps -> the user's ``--set`` overrides.
Every override is validated against the frozen dataclass it targets."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from harness.api import BOOL_WORDS, COMPONENT_KINDS, Budget, EvalBudget, MethodInfo, RunSpec, RuntimeOptions, SearchBudget
from harness.errors import HarnessError, unknown

# What each preset changes from the paper settings (SearchBudget/EvalBudget defaults, the space's
# eval defaults, the method's own "paper" budget). smoke: seconds to minutes on a CPU; quick: a
# meaningful result on one GPU in well under an hour; paper: the published settings.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # every phase (search with its epoch schedules, derivation, retraining or the benchmark query, the
    # record) on the least work that exercises it: 2 search epochs of 2 steps on a 3-cell supernet (one
    # normal and two reduction cells on DARTS spaces), 3 retrain epochs of 10 steps of a 3-cell network
    # (lr 0.1: at 0.025 thirty steps leave it near chance), the fused mixed cell on a CPU too (up to twice
    # as fast at this size). BENCHMARKS.md, smoke timing: every method under a minute on s1-s4 on 2 CPU
    # cores, alone and beside a busy process.
    "smoke": {
        "search": {"epochs": 2, "batch_size": 32, "channels": 4, "layers": 3, "max_train_images": 128},
        "eval": {"epochs": 3, "batch_size": 64, "channels": 8, "layers": 3, "max_train_images": 640,
                 "lr": 0.1, "cutout": 0},
        "runtime": {"fast_cpu": True},
    },
    "quick": {
        "search": {"epochs": 10, "max_train_images": 20000},
        "eval": {"epochs": 20, "channels": 16, "layers": 8, "max_train_images": 20000},
    },
    "paper": {"search": {}, "eval": {}},
}

SECTIONS = ("search", "eval", "runtime")


def parse_value(raw: str, annotation: Any, where: str) -> Any:
    """Convert a ``--set`` string to the field's type."""
    hint = annotation if not isinstance(annotation, str) else {
        "int": int, "float": float, "bool": bool, "str": str, "int | None": int | None,
        "float | None": float | None,
    }.get(annotation, str)
    args = typing.get_args(hint)
    if args and type(None) in args:
        if raw.lower() in ("none", "null", ""):
            return None
        hint = next(a for a in args if a is not type(None))
    try:
        if hint is bool:
            if raw.lower() in BOOL_WORDS:
                return BOOL_WORDS[raw.lower()]
            raise ValueError(raw)
        if hint in (int, float, str):
            return hint(raw)
        if typing.get_origin(hint) is tuple:
            inner = typing.get_args(hint)[0]
            return tuple(inner(v) for v in raw.split(","))
    except ValueError:
        raise HarnessError(f"--set {where}={raw!r}: expected a value of type {getattr(hint, '__name__', hint)}") from None
    return raw


def _fields(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls)}


def apply(cls_or_obj, overrides: Mapping[str, Any], where: str, raw: bool = False):
    """Return ``cls(**overrides)`` (or ``replace(obj, ...)``), rejecting unknown fields by name."""
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    fields = _fields(cls)
    values = {}
    for key, value in overrides.items():
        if key not in fields:
            raise unknown(f"key for {where}", key, fields)
        values[key] = parse_value(value, fields[key], f"{where}.{key}") if raw else value
    try:
        if isinstance(cls_or_obj, type):
            return cls(**values)
        return dataclasses.replace(cls_or_obj, **values)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"invalid settings for {where}: {exc}") from None


def parse_sets(items: Sequence[str]) -> list[tuple[str, str, str]]:
    """``["rome.k=4", "search.epochs=3"]`` -> ``[("rome", "k", "4"), ...]``."""
    out = []
    for item in items:
        target, eq, value = item.partition("=")
        prefix, dot, key = target.partition(".")
        if not eq or not dot or not prefix or not key:
            raise HarnessError(f"--set {item!r}: expected COMPONENT.KEY=VALUE, e.g. search.epochs=3 or sampler.tau_max=5")
        out.append((prefix.strip(), key.strip(), value.strip()))
    return out


def resolve(registry, method: MethodInfo, space: str, dataset: str, seed: int, preset: str,
            swaps: Mapping[str, str | None], sets: Sequence[tuple[str, str, str]]) -> RunSpec:
    """Resolve one run's full configuration."""
    if preset not in PRESETS:
        raise unknown("preset", preset, PRESETS)
    space_obj = registry.space(space)
    if method.spaces is not None and space not in method.spaces:
        raise HarnessError(f"method {method.name!r} does not apply to space {space!r}; its spaces: "
                           f"{', '.join(method.spaces)}")
    components = method.components()
    for kind, name in swaps.items():
        if name:
            components[kind] = name
    infos = {kind: registry.component(kind, name) for kind, name in components.items()}

    # component hyperparameters: paper defaults <- the component's own settings for a reduced preset
    # (e.g. the perturbation selector's shorter fine-tuning in `smoke`, wherever it is swapped in) <- method
    # defaults <- method's per-space defaults <- the method's budget for a reduced preset <- its budget
    # for that preset on this space (e.g. DrNAS's partial-channel K on a narrow supernet, not on NB201)
    per_kind: dict[str, dict[str, Any]] = {
        k: dict(infos[k].presets.get(preset, {})) if preset != "paper" and k in infos else {}
        for k in COMPONENT_KINDS}

    def preset_layer(budgets):
        return {} if preset == "paper" else {k: v for k, v in budgets.get(preset, {}).items()
                                             if k in COMPONENT_KINDS}

    for layer in (method.defaults, method.space_defaults.get(space, {}), preset_layer(method.budgets),
                  preset_layer(method.space_budgets.get(space, {}))):
        for kind, values in layer.items():
            if components[kind] == method.components()[kind]:  # a swapped-in component keeps its own
                per_kind[kind].update(values)
    raw_sets: dict[str, dict[str, str]] = {}
    for prefix, key, value in sets:
        target = _set_target(prefix, key, method, components, infos)
        raw_sets.setdefault(target, {})[key] = value

    # the space's own settings come first: its supernet (every preset), the op set the method's paper
    # searches, and the evaluation network of its protocol for this dataset
    op_set = raw_sets.get("search", {}).get("op_set", method.op_sets.get(space, "all"))
    space_obj.with_op_set(op_set)  # validates it against the space's op sets, naming the valid ones
    protocol = space_obj.eval_protocol(raw_sets.get("eval", {}).get("protocol"))
    eval_defaults = space_obj.eval_defaults(dataset, protocol)
    budget_layers: dict[str, dict[str, Any]] = {
        "search": {**space_obj.search_defaults(), "op_set": op_set},
        "eval": {**eval_defaults, "protocol": protocol}, "runtime": dict(PRESETS[preset].get("runtime", {}))}
    # then the method's paper budget, then its paper budget for this space, then the same two for
    # the chosen preset, then the preset's own caps (smoke/quick shrink every method alike)
    space_budgets = method.space_budgets.get(space, {})
    for section in ("search", "eval"):
        for name in ("paper",) if preset == "paper" else ("paper", preset):
            budget_layers[section].update(method.budgets.get(name, {}).get(section, {}))
            budget_layers[section].update(space_budgets.get(name, {}).get(section, {}))
        budget_layers[section].update(PRESETS[preset].get(section, {}))

    hparams = {}
    for kind, info in infos.items():
        obj = apply(info.config, per_kind[kind], f"{kind} {info.name!r}")
        hparams[kind] = apply(obj, raw_sets.get(kind, {}), f"{kind} {info.name!r}", raw=True)
    sections = {}
    for section, cls in (("search", SearchBudget), ("eval", EvalBudget), ("runtime", RuntimeOptions)):
        obj = apply(cls, budget_layers[section], section)
        sections[section] = apply(obj, raw_sets.get(section, {}), section, raw=True)
    return RunSpec(method=method.name, space=space, dataset=dataset, seed=seed, preset=preset,
                   components=components, hparams=hparams,
                   budget=Budget(sections["search"], sections["eval"], sections["runtime"]))


def _set_target(prefix: str, key: str, method: MethodInfo, components: Mapping[str, str], infos) -> str:
    """Which section or component kind a ``--set PREFIX.KEY`` means."""
    if prefix in SECTIONS or prefix in COMPONENT_KINDS:
        return prefix
    for kind, name in components.items():
        if prefix == name:
            return kind
    if prefix == method.name:
        owners = [kind for kind, info in infos.items() if key in {f.name for f in dataclasses.fields(info.config)}]
        if len(owners) == 1:
            return owners[0]
        if not owners:
            keys = sorted({f"{kind}.{f.name}" for kind, info in infos.items() for f in dataclasses.fields(info.config)})
            raise HarnessError(f"--set {prefix}.{key}: no component of method {prefix!r} has a key {key!r}; "
                               f"valid keys: {', '.join(keys) or '(none)'}")
        raise HarnessError(f"--set {prefix}.{key} is ambiguous (in {', '.join(owners)}); use KIND.{key}")
    valid = list(SECTIONS) + list(COMPONENT_KINDS) + sorted(set(components.values())) + [method.name]
    raise unknown("--set target", prefix, valid)
