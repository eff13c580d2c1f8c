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
