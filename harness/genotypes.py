"""Genotypes in the forms the field already uses, parsed and printed canonically.

* DARTS-style cells: ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
  reduce=[...], reduce_concat=[2, 3, 4, 5])`` -- two ``(op, input)`` pairs per intermediate node, in
  node order; inputs 0 and 1 are the cell inputs, 2.. the intermediate nodes (quark0/darts).
  Cells whose nodes have other in-degrees (EnTranNAS-DST keeps every non-zero connection) are written
  with one list per node: ``normal=[[('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 2)],
  [('dil_conv_3x3', 0)], ...]``. A nested cell whose nodes all have two inputs is the same genotype as
  the flat form, and prints flat, so every genotype the DARTS tools read stays in their format.
* NAS-Bench-201 cells: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -- one group per node 1..3 listing
  ``op~input`` for every incoming edge (D-X-Y/NAS-Bench-201).

Parsing checks the structure only; whether the ops belong to a given space is the space's check
(``SearchSpace.validate``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from harness.errors import HarnessError

DARTS_EXAMPLE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5], "
    "reduce=[...], reduce_concat=[2, 3, 4, 5])"
)
NB201_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"

Edge = tuple[str, int]


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS-space cell pair. ``normal``/``reduce`` hold the (op, input) pairs of all nodes in node
    order; ``normal_degree``/``reduce_degree`` give each node's number of pairs, ``None`` meaning two per
    node (the DARTS format). A degree tuple of all 2s is normalised to ``None``, so equal cells compare
    equal however they were written."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    normal_degree: tuple[int, ...] | None = None
    reduce_degree: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for kind in ("normal", "reduce"):
            degree = getattr(self, f"{kind}_degree")
            if degree is None:
                continue
            degree = tuple(int(d) for d in degree)
            if sum(degree) != len(getattr(self, kind)):
                raise HarnessError(f"DartsGenotype {kind}_degree {list(degree)} sums to {sum(degree)}, but the "
                                   f"{kind} cell lists {len(getattr(self, kind))} (op, input) pairs")
            object.__setattr__(self, f"{kind}_degree", None if all(d == 2 for d in degree) else degree)

    @property
    def steps(self) -> int:
        degree = self.normal_degree
        return len(degree) if degree is not None else len(self.normal) // 2

    @property
    def standard(self) -> bool:
        """Two inputs per node in both cells (the format every DARTS tool reads)."""
        return self.normal_degree is None and self.reduce_degree is None

    def cell(self, kind: str) -> tuple[Edge, ...]:
        return self.normal if kind == "normal" else self.reduce

    def degree(self, kind: str) -> tuple[int, ...]:
        degree = self.normal_degree if kind == "normal" else self.reduce_degree
        return degree if degree is not None else (2,) * (len(self.cell(kind)) // 2)

    def nodes(self, kind: str) -> list[tuple[Edge, ...]]:
        """The (op, input) pairs of each intermediate node of one cell, node by node."""
        cell, out, k = self.cell(kind), [], 0
        for d in self.degree(kind):
            out.append(tuple(cell[k:k + d]))
            k += d
        return out

    @classmethod
    def from_nodes(cls, normal: list, normal_concat, reduce: list, reduce_concat) -> DartsGenotype:
        """Build from per-node lists of (op, input) pairs (any in-degree)."""
        return cls(tuple(e for node in normal for e in node), tuple(normal_concat),
                   tuple(e for node in reduce for e in node), tuple(reduce_concat),
                   tuple(len(n) for n in normal), tuple(len(n) for n in reduce))

    def to_string(self) -> str:
        def flat(edges) -> str:
            return "[" + ", ".join(f"({op!r}, {src})" for op, src in edges) + "]"

        def pairs(kind: str) -> str:
            if self.standard:
                return flat(self.cell(kind))
            return "[" + ", ".join(flat(node) for node in self.nodes(kind)) + "]"

        def ints(values: tuple[int, ...]) -> str:
            return "[" + ", ".join(str(v) for v in values) + "]"

        return (
            f"Genotype(normal={pairs('normal')}, normal_concat={ints(self.normal_concat)}, "
            f"reduce={pairs('reduce')}, reduce_concat={ints(self.reduce_concat)})"
        )

    def __str__(self) -> str:
        return self.to_string()


@dataclass(frozen=True)
class NB201Genotype:
    """A NAS-Bench-201 cell: one op per edge in the order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2."""

    ops: tuple[str, ...]

    EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

    def to_string(self) -> str:
        groups, k = [], 0
        for node in (1, 2, 3):
            items = []
            for src in range(node):
                items.append(f"{self.ops[k]}~{src}")
                k += 1
            groups.append("|" + "|".join(items) + "|")
        return "+".join(groups)

    def __str__(self) -> str:
        return self.to_string()


Genotype = DartsGenotype | NB201Genotype


def parse_nb201(text: str) -> NB201Genotype:
    """Parse an NB201 arch string; the error names the malformed part and shows the expected form."""
    text = text.strip()
    groups = text.split("+")
    if len(groups) != 3:
        raise HarnessError(
            f"malformed NAS-Bench-201 genotype {text!r}: expected 3 '+'-separated node groups "
            f"like {NB201_EXAMPLE}"
        )
    ops: list[str] = []
    for node, group in enumerate(groups, start=1):
        if not (group.startswith("|") and group.endswith("|")):
            raise HarnessError(f"malformed NAS-Bench-201 genotype {text!r}: group {group!r} must be '|...|'")
        items = [item for item in group[1:-1].split("|")]
        if len(items) != node:
            raise HarnessError(
                f"malformed NAS-Bench-201 genotype {text!r}: node {node} needs {node} inputs, got {group!r}"
            )
        for src, item in enumerate(items):
            op, sep, idx = item.partition("~")
            if not sep or idx != str(src) or not op:
                raise HarnessError(
                    f"malformed NAS-Bench-201 genotype {text!r}: expected 'op~{src}' in node {node}, got {item!r}"
                )
            ops.append(op)
    return NB201Genotype(tuple(ops))


def _literal(node: ast.AST, text: str) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError) as exc:
        raise HarnessError(f"malformed DARTS genotype {text!r}: {exc}") from None


def parse_darts(text: str) -> DartsGenotype:
    """Parse the ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)`` text.

    Only literals are evaluated (``ast``), never code. ``range(2, 6)`` is accepted for the concat lists,
    as quark0/darts writes it.
    """
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise HarnessError(f"malformed DARTS genotype {text!r}: not valid syntax; expected {DARTS_EXAMPLE}") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise HarnessError(f"malformed DARTS genotype {text!r}: expected {DARTS_EXAMPLE}")
    fields = {}
    names = ("normal", "normal_concat", "reduce", "reduce_concat")
    for name, arg in zip(names, tree.args):
        fields[name] = arg
    for kw in tree.keywords:
        if kw.arg not in names:
            raise HarnessError(f"malformed DARTS genotype: unknown field {kw.arg!r}; valid fields: {', '.join(names)}")
        fields[kw.arg] = kw.value
    missing = [n for n in names if n not in fields]
    if missing:
        raise HarnessError(f"malformed DARTS genotype {text!r}: missing field(s) {', '.join(missing)}")

    def concat(node: ast.AST) -> tuple[int, ...]:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            return tuple(range(*[int(_literal(a, text)) for a in node.args]))  # type: ignore[arg-type]
        value = _literal(node, text)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
            raise HarnessError(f"malformed DARTS genotype: concat must be a list of ints, got {value!r}")
        return tuple(value)

    def pair(name: str, where: str, item: object, node: int) -> Edge:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], int)):
            raise HarnessError(f"malformed DARTS genotype: {name}{where} must be ('op', input), got {item!r}")
        if not 0 <= item[1] < node:
            raise HarnessError(
                f"malformed DARTS genotype: {name}{where} = {tuple(item)!r} feeds node {node}, so its input "
                f"must be in 0..{node - 1}"
            )
        return (item[0], item[1])

    def cell(name: str) -> list[list[Edge]]:
        """Per-node lists of pairs: flat form (two per node) or nested form (one list per node)."""
        value = _literal(fields[name], text)
        if not isinstance(value, (list, tuple)) or not value:
            raise HarnessError(f"malformed DARTS genotype: {name} must list (op, input) pairs, got {value!r}")
        if all(isinstance(v, list) for v in value):  # nested: one list of pairs per node
            nodes = []
            for n, group in enumerate(value):
                if not group:
                    raise HarnessError(f"malformed DARTS genotype: {name}[{n}] (node {2 + n}) has no input; "
                                       f"every node needs at least one (op, input) pair")
                nodes.append([pair(name, f"[{n}][{k}]", item, 2 + n) for k, item in enumerate(group)])
            return nodes
        if len(value) % 2:
            raise HarnessError(
                f"malformed DARTS genotype: {name} must list two (op, input) pairs per node (or one list "
                f"of pairs per node), got {value!r}"
            )
        edges = [pair(name, f"[{k}]", item, 2 + k // 2) for k, item in enumerate(value)]
        return [edges[k:k + 2] for k in range(0, len(edges), 2)]

    normal, reduce = cell("normal"), cell("reduce")
    if len(normal) != len(reduce):
        raise HarnessError("malformed DARTS genotype: normal and reduce cells must have the same number of nodes")
    return DartsGenotype.from_nodes(normal, concat(fields["normal_concat"]), reduce, concat(fields["reduce_concat"]))


def parse_genotype(text: str) -> Genotype:
    """Parse either form, chosen by its shape."""
    stripped = text.strip()
    if stripped.startswith("Genotype"):
        return parse_darts(stripped)
    if stripped.startswith("|"):
        return parse_nb201(stripped)
    raise HarnessError(
        f"malformed genotype {text!r}: expected a DARTS genotype ({DARTS_EXAMPLE}) or a NAS-Bench-201 "
        f"string ({NB201_EXAMPLE})"
    )
