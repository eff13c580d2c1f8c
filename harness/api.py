"""The types every part of the harness and every plugin speaks: configuration, component contracts,
records. Configuration is parsed once at the CLI into these frozen dataclasses and passed down; no
dicts or argparse namespaces travel below the CLI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch is imported lazily so that `harness --help` stays instant
    import torch
    from torch import nn

    from harness.genotypes import Genotype
    from harness.spaces import SearchSpace

COMPONENT_KINDS = ("sampler", "optimizer", "selector", "cell")


# ----------------------------------------------------------------------------------------------
# Budgets (presets)


@dataclass(frozen=True)
class SearchBudget:
    """How much search to do, and on what supernet. Defaults are DARTS's search setting (§2.5); the
    space's ``search_defaults()`` (its supernet's width and depth) apply over them in every preset."""

    epochs: int = 50
    batch_size: int = 64
    channels: int = 16
    layers: int = 8  # DARTS spaces: cells (8); NB201: cells per stage (N=5, from the space)
    op_set: str = "all"  # which of the space's op sets the supernet searches (MethodInfo.op_sets)
    train_portion: float = 0.5  # fraction of the training set used for weights, rest for arch
    max_train_images: int | None = None  # cap on the search split (both halves), for quick budgets
    max_steps_per_epoch: int | None = None


@dataclass(frozen=True)
class EvalBudget:
    """Retraining of the derived network (DARTS protocol, §2.6); on nb201 a benchmark query replaces it.
    ``protocol`` names the space's evaluation protocol the network size comes from (resolved per
    dataset: RobustDARTS's on S1-S4 by default); explicit fields still override it."""

    protocol: str = ""  # "" until resolved: the space's default protocol
    epochs: int = 600
    batch_size: int = 96
    channels: int = 36
    layers: int = 20
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    auxiliary_weight: float = 0.4  # 0 disables the auxiliary head
    cutout: int = 16  # 0 disables cutout
    drop_path: float = 0.2
    max_train_images: int | None = None
    max_steps_per_epoch: int | None = None


# what a switch set from text (--set, config files) reads as on and off
BOOL_WORDS = {**dict.fromkeys(("1", "true", "yes", "on"), True), **dict.fromkeys(("0", "false", "no", "off"), False)}


def on_off_auto(value, name: str) -> bool | str:
    """A switch that is true, false or auto (a bool, or text as ``--set`` gives it): True, False or "auto"; a
    ValueError naming ``name``, the value and the choices for anything else."""
    out = {**BOOL_WORDS, "auto": "auto"}.get(str(value).lower())
    if out is None:
        raise ValueError(f"{name} must be true, false or auto, not {value!r}")
    return out


@dataclass(frozen=True)
class RuntimeOptions:
    """How a run executes: the same computation, up to floating-point rounding (not part of a run's
    identity; what was used is recorded in ``record.search["runtime"]``)."""

    # the fused forward of mixed cells (harness.nn.fused): same math, a few large kernels. On CUDA
    # whenever this is true. On a CPU only with fast_cpu as well: there a fused step is about twice as fast
    # on the smoke preset's tiny supernets (per-op overhead dominates) but 20% slower on the DARTS
    # supernet at paper size (BENCHMARKS.md, "Smoke runs on a shared CPU"), so the smoke preset sets it.
    fast: bool = True
    fast_cpu: bool = False
    # on the fused path, recompute each mixed-op sum's inputs in backward instead of keeping a copy of every
    # op output for it (harness.nn.fused.FusedMixed.recompute): a DARTS search step at batch 64, C=16, 8
    # cells keeps 1.4 GiB less for backward (6.4 instead of 7.8, counted on a CPU; BENCHMARKS.md), for one
    # more BatchNorm and GEMM per pass. Same math (the same operations again). Timed on an H200 (captured):
    # 7.18 instead of 8.29 GiB peak, 122.8 instead of 115.2 ms a step; off by default (the step's time first)
    fast_recompute: bool = False
    # replay each search step from a CUDA graph (harness.graphs): the kernels the step runs, launched as one.
    # "auto" (the default): on a CUDA device, on the fast path, whenever the run's components declare
    # graph_capturable (DARTS on an H200: 7.0x / 7.2x its eager step on darts / nb201, fp32 drift within the
    # rounding baseline on both: BENCHMARKS.md, "GPU figures, 2026-12-04, the second H200 run"); a CPU run or
    # a component that reads the host steps uncaptured, said in the record (and the log on CUDA). true: also with
    # runtime.fast=false (the eager cell captured), logging why not where it cannot. false: never.
    cuda_graph: str | bool = "auto"
    log_every: int = 50
    # test accuracy after every N retrain epochs, kept in the retrain curve (0: only the final test). An
    # observation only: the test pass draws no random numbers, so the training and its result are the same.
    test_every: int = 0
    # CPU intra-op threads of a run (torch.set_num_threads). 1: the search networks of a CPU run are tiny,
    # so more threads add synchronisation, not speed, and oversubscribe the cores as soon as another
    # process runs beside it (measured in BENCHMARKS.md); grids scale with one process per core instead.
    # A fixed count also makes a CPU result independent of the machine's core count (the summation order
    # of a reduction depends on the thread count). 0: torch's default (one thread per core).
    threads: int = 1
    # torch.use_deterministic_algorithms for the run (and CUBLAS_WORKSPACE_CONFIG on CUDA when unset):
    # an op without a deterministic implementation then fails instead of varying. A CPU run on one thread
    # is reproducible either way (tested); on a GPU some kernels are not, so compare GPU runs by the
    # spread over seeds.
    deterministic: bool = False
    # experiment trackers that log the run (comma-separated names registered by harness_register_trackers,
    # e.g. "tensorboard,mlflow"; harness.tracking) and where they write ("": harness-runs/tracking; harness run
    # sets tracking/ beside the store). Observers only: a tracked run computes the same result.
    track: str = ""
    track_dir: str = ""

    def __post_init__(self):
        object.__setattr__(self, "cuda_graph", on_off_auto(self.cuda_graph, "cuda_graph"))
        if self.test_every < 0:
            raise ValueError(f"test_every must be 0 (only the final test) or a positive count, not {self.test_every}")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 (torch's default) or a positive count, not {self.threads}")


@dataclass(frozen=True)
class Budget:
    search: SearchBudget = SearchBudget()
    eval: EvalBudget = EvalBudget()
    runtime: RuntimeOptions = RuntimeOptions()


# ----------------------------------------------------------------------------------------------
# Run specification and records


@dataclass(frozen=True)
class RunSpec:
    """One (method, space, dataset, seed) run, fully resolved."""

    method: str
    space: str
    dataset: str
    seed: int
    preset: str
    components: Mapping[str, str]  # kind -> component name
    hparams: Mapping[str, Any]  # kind -> frozen config dataclass instance
    budget: Budget

    def resolved(self) -> dict[str, Any]:
        """A JSON-able dict of everything that determines the result (the store's identity key)."""
        return {
            "method": self.method,
            "space": self.space,
            "dataset": self.dataset,
            "seed": self.seed,
            "preset": self.preset,
            "components": dict(self.components),
            "hparams": {k: dataclasses.asdict(v) for k, v in sorted(self.hparams.items())},
            "search": dataclasses.asdict(self.budget.search),
            "eval": dataclasses.asdict(self.budget.eval),
        }


@dataclass
class RunRecord:
    """What the results store keeps for one run (one row)."""

    method: str
    space: str
    dataset: str
    seed: int
    preset: str
    config: dict[str, Any]  # RunSpec.resolved()
    config_key: str  # sha256 of the canonical JSON of ``config``
    status: str = "running"  # running | completed | failed
    genotype: str | None = None
    search: dict[str, Any] = field(default_factory=dict)  # curve summary: final losses, arch weights, ...
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluation: test_accuracy, valid_accuracy, ...
    costs: dict[str, Any] = field(default_factory=dict)  # wall_s, search_s, eval_s, peak_mem_bytes / peak_rss_bytes
    plugins: dict[str, str] = field(default_factory=dict)  # distribution name -> version
    torch_version: str = ""
    device: str = ""
    command: str = ""  # the command line that made the run
    error: str | None = None
    id: int | None = None
    attempt: int = 1
    created: str = ""
    updated: str = ""


# ----------------------------------------------------------------------------------------------
# Component contracts


@dataclass
class ArchWeights:
    """What a sampler hands the network for one forward pass, per cell kind ("normal", "reduce").

    ``weights[kind]`` is an (edges, ops) tensor multiplying each op's output. For single-path cells
    ``index[kind]`` (edges,) names the one op to run per edge (its weight is ``weights[kind][e, index]``;
    the other entries are kept so their probabilities receive gradient). ``edge_weights[kind]`` (edges,)
    optionally scales whole edges (topology sampling); an edge whose weight is exactly zero by
    construction is listed in ``active[kind]`` as False so cells may skip it. ``host_index`` (and
    ``host_active``) are the same decisions as Python lists, copied from the device once per forward
    by the sampler, so that single-path cells choose modules without one sync per edge; a sampler may
    make them lazily (``harness.nn.samplers.HostLists``: copied on first access), so that cells choosing
    on the device never wait for it. ``samples`` > 1: the forward holds that many sampled architectures
    (``harness.nn.groups``): every tensor here has a leading sample dimension and the batch is that many
    copies of the same images, sample-major.
    """

    weights: dict[str, torch.Tensor]
    index: dict[str, torch.Tensor] | None = None
    host_index: dict[str, list[int]] | None = None
    host_active: dict[str, list[bool]] | None = None
    edge_weights: dict[str, torch.Tensor] | None = None
    active: dict[str, torch.Tensor] | None = None
    samples: int = 1


@dataclass
class StepStats:
    """Returned by ``BilevelOptimizer.step``: device tensors (not floats) so the loop never syncs."""

    train_loss: torch.Tensor
    val_loss: torch.Tensor | None = None
    train_correct: torch.Tensor | None = None
    n: int = 0


@runtime_checkable
class Sampler(Protocol):
    """Owns the architecture parameters and turns them into per-forward weights (an ``nn.Module``: the
    supernet holds it as ``net.sampler``, so ``.to(device)`` and the checkpoint's ``state_dict`` reach it).

    Built as ``factory(config, space=space)``. What the host reads, besides the methods below (all optional
    class attributes; checked by ``harness.testing.check_sampler``):

    * ``single_path = True``: ``forward`` names one op per edge (``ArchWeights.index`` and
      ``host_index``); single-path cells require it.
    * ``graph_capturable = True`` (on the class itself): the step may be replayed from a CUDA graph
      (``harness.graphs``); host-side state changes only in ``set_progress``.
    * ``requires``: what it needs of the run's other components (``harness.testing.requirements``).
    """

    def forward(self) -> ArchWeights: ...

    def probabilities(self) -> dict[str, torch.Tensor]:
        """Deterministic (edges, ops) probabilities per cell kind, for selection and logging."""
        ...

    def arch_parameters(self) -> list[torch.Tensor]: ...

    def set_progress(self, epoch: int, total_epochs: int) -> None:
        """Called at every epoch start (temperature schedules)."""
        ...

    def regularization(self) -> torch.Tensor | None:
        """An extra term added to the arch loss, or None."""
        ...


class SearchNet(Protocol):
    """The supernet a space builds (``SearchSpace.build_search_network``; ``harness.blocks.Supernet`` is a
    base): ``net(x)`` draws ``sampler()`` once and returns (batch, classes) logits; ``sampler`` may be
    swapped for the duration of a selection (DARTS-PT's projection wraps it); ``weight_parameters()`` is
    every parameter except the architecture's (what bilevel optimizers train)."""

    sampler: Sampler

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def weight_parameters(self) -> list[torch.Tensor]: ...


@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor


@runtime_checkable
class BilevelOptimizer(Protocol):
    """One search step. Owns the weight and arch optimizers and the weight lr schedule.

    Built as ``factory(config, net=, steps_per_epoch=, epochs=)``. ``needs_val_batch``: whether ``step``
    takes a validation batch (else ``val`` is None). ``step`` returns device tensors (``StepStats``) and
    never syncs. What the host also reads, when present (checked by ``harness.testing.check_optimizer``):

    * ``lr`` (a number): the current weight lr, logged per epoch.
    * ``w_opt`` (a ``torch.optim`` optimizer over the network weights): selectors that fine-tune the
      supernet (DARTS-PT) set its lr and reset its momentum; they declare it in ``requires``.
    * ``graph_capturable = True`` (on the class itself) and ``requires``, as for samplers.
    * For checkpoints: ``state_dict()``/``load_state_dict()`` if it defines them; otherwise every
      ``torch.optim`` optimizer and lr scheduler it holds and its plain scalar and tensor attributes are
      saved after every epoch and step boundary and put back on a resume (``harness.search.component_state``).
    """

    needs_val_batch: bool

    def step(self, net: SearchNet, train: Batch, val: Batch | None) -> StepStats: ...

    def set_progress(self, epoch: int, total_epochs: int) -> None: ...


@dataclass
class SelectionContext:
    """What a selector may use besides the supernet: the space and batches of validation data.

    A selector with a long phase of its own (DARTS-PT fine-tunes the supernet between its decisions) may
    hand its own state, plain data (what ``harness.checkpoint.check_plain`` accepts; a ``"where"`` string
    is logged on resume), to ``checkpoint`` at points from which it can go on (as often as it likes: one
    offered within ``harness.search.SELECT_CHECKPOINT_MIN_S`` of the last written is let go): the run's
    checkpoint then holds it beside the network, the optimizer's and sampler's states and every random
    generator, with the network's ``sampler`` the one the search trained (a wrapper of the selector's own put
    back first).
    A run resumed from such a checkpoint calls ``select`` with those restored and that state as
    ``resume``; None: a fresh selection, or no checkpoints kept."""

    space: SearchSpace
    val_batches: Callable[[], Iterator[Batch]]
    train_batches: Callable[[], Iterator[Batch]]
    optimizer: BilevelOptimizer
    seed: int
    checkpoint: Callable[[dict[str, Any]], None] | None = None
    resume: dict[str, Any] | None = None


@runtime_checkable
class Selector(Protocol):
    """Turns the searched supernet into a genotype. Built as ``factory(config)``; ``select`` returns a
    genotype that ``ctx.space.validate`` accepts and ``ctx.space.parse(genotype.to_string())`` reads back.
    It may train the supernet further through ``ctx.optimizer.step`` (the run's optimizer, never a CUDA graph
    of its step: ``harness.search.uncaptured``) and read ``ctx.val_batches()``/``ctx.train_batches()``; a need
    beyond the contract (an optimizer's ``w_opt``, a space's genotype family) is declared in ``requires``
    (``harness.testing.requirements``)."""

    def select(self, net: SearchNet, ctx: SelectionContext) -> Genotype: ...


@dataclass(frozen=True)
class CellSpec:
    """The graph of a cell, as the space defines it, for a cell type to fill with operations.

    ``n_inputs`` input states (2 for DARTS cells, 1 for NB201) are followed by ``n_nodes`` computed
    nodes; ``edges[e] = (src, dst)`` in the space's edge order; ``ops[e]`` the candidate op names of
    edge e; ``strides[e]`` its stride (2 on edges leaving a reduction cell's inputs).
    """

    kind: str  # "normal" | "reduce"
    n_inputs: int
    n_nodes: int
    edges: tuple[tuple[int, int], ...]
    ops: tuple[tuple[str, ...], ...]
    strides: tuple[int, ...]
    channels: int
    op_factory: Callable[[str, int, int], nn.Module]  # (op name, channels, stride) -> module
    position: int = 0  # index of this cell in the network
    first_of_kind: bool = False  # the first normal / first reduction cell (EnTranNAS's engine cells)
    space: Any = None  # the SearchSpace (for cell types that derive a genotype themselves)


@runtime_checkable
class CellType(Protocol):
    """Builds the computing body of a search cell: input states -> all node states. Built as
    ``factory(config)``. Optional class attributes the host reads: ``requires`` (a single-path cell:
    ``{"sampler": ("single_path",)}``) and ``graph_capturable``; a body (``harness.blocks.CellBody``)
    with a faster implementation of the same math has ``supports_fast`` and a ``fast`` switch
    (``harness.nn.cells.set_fast``)."""

    def build(self, spec: CellSpec) -> nn.Module:
        """The module's ``forward(states, arch: ArchWeights) -> list[Tensor]`` returns inputs + nodes."""
        ...


# ----------------------------------------------------------------------------------------------
# Registration records


@dataclass(frozen=True)
class ComponentInfo:
    """A registered component and its factory. The host calls, by kind: sampler
    ``factory(config, space=)``; optimizer ``factory(config, net=, steps_per_epoch=, epochs=)``;
    selector ``factory(config)``; cell type ``factory(config)`` (hook specs in ``harness.hookspecs``)."""

    kind: str
    name: str
    factory: Callable[..., Any]
    config: type  # a frozen dataclass; its defaults are the paper's settings
    plugin: str = ""
    doc: str = ""
    # what a reduced preset changes in the config, e.g. {"smoke": {"tune_steps": 1}}: applied wherever the
    # component runs under that preset (in its own method or swapped into another), before the method's
    # own settings for the preset
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


REPORTED_METRICS = ("test_error", "test_accuracy", "valid_error", "valid_accuracy")


@dataclass(frozen=True)
class Reported:
    """A number a method's paper reports, as published: data with a citation. Errors stay errors and
    accuracies accuracies (in percent); ``harness leaderboard --with-paper`` converts only for display.

    ``space`` and ``dataset`` are this harness's names (``darts``, ``s1``..``s4``, ``nb201``; ``cifar10``,
    ``cifar100``, ``svhn``, ``imagenet16-120``). ``aggregation`` is how the paper summarised its runs:
    ``"mean-std"`` (``mean`` ± ``std`` over ``n`` runs), ``"best"`` (the best of ``n``), or ``"single"``
    (one run, or not stated). ``protocol`` is the evaluation setting in words (e.g. "RobustDARTS: 20 cells,
    C=16 on CIFAR-100/SVHN"), ``source`` the paper, table and row the number comes from. ``eval_protocol``,
    where the paper reports the same space and dataset under several settings, names the space's evaluation
    protocol (``eval.protocol``: ``robustdarts``, ``darts``) it matches, so the leaderboard sets each run
    beside the number of its own setting; "" matches any."""

    space: str
    dataset: str
    metric: str  # one of REPORTED_METRICS
    mean: float
    source: str
    std: float | None = None
    n: int | None = None
    aggregation: str = "single"  # "mean-std" | "best" | "single"
    protocol: str = ""
    note: str = ""
    eval_protocol: str = ""

    def __post_init__(self):
        if self.metric not in REPORTED_METRICS:
            raise ValueError(f"metric must be one of {', '.join(REPORTED_METRICS)}, not {self.metric!r}")
        if self.aggregation not in ("mean-std", "best", "single"):
            raise ValueError(f"aggregation must be 'mean-std', 'best' or 'single', not {self.aggregation!r}")

    def as_accuracy(self) -> tuple[str, float]:
        """(``test``/``valid``, the value as an accuracy in percent): 100 - error for an error."""
        split, kind = self.metric.split("_")
        return split, (100.0 - self.mean if kind == "error" else self.mean)


@dataclass(frozen=True)
class MethodInfo:
    """A named recipe: one component of each kind, plus per-kind defaults and per-preset budgets.

    ``defaults`` maps a kind to field overrides of that component's config (e.g. ``{"sampler":
    {"tau_max": 10.0}}``). ``budgets`` maps a preset name to SearchBudget/EvalBudget field overrides
    under keys "search" and "eval", applied over the harness presets; a reduced preset's budget may also
    hold component kinds (``{"smoke": {"selector": {"tune_epochs_per_decision": 1}}}``) to shrink the
    work of the method's own components there (never of a swapped-in one). ``space_defaults`` maps a space
    name to per-kind overrides that apply on that space only (e.g. xautodl's NB201 settings).
    ``space_budgets`` maps a space name to budgets in the form of ``budgets`` that apply on that space
    only, over the method's general ones (e.g. DARTS-PT trains its NB201 supernet 100 epochs, not 50).
    ``op_sets`` maps a space name to the op set (``SearchSpace.op_sets()``) the method's paper searches
    there, e.g. ``{"darts": "no-none"}`` for the 7-op DARTS space; unlisted spaces search "all".
    """

    name: str
    sampler: str
    optimizer: str
    selector: str
    cell: str
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    budgets: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    space_defaults: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    space_budgets: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]] = field(default_factory=dict)
    op_sets: Mapping[str, str] = field(default_factory=dict)
    spaces: tuple[str, ...] | None = None  # None: every space
    reported: tuple[Reported, ...] = ()  # what the method's paper(s) report (harness leaderboard --with-paper)
    paper: str = ""
    doc: str = ""
    plugin: str = ""

    def components(self) -> dict[str, str]:
        return {"sampler": self.sampler, "optimizer": self.optimizer, "selector": self.selector,
                "cell": self.cell}
