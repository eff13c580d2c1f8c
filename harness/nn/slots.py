"""The sampled op of each edge, chosen on the device: a single-path cell's step with no host read, so that it
can be captured in a CUDA graph, that computes per edge one conv chain and the source's pools instead of
every op (issue 17).

GDAS's eager cell runs one op per edge but picks it on the host (one device->host copy per forward), so
its step cannot be replayed from a CUDA graph; the capturable form so far (``harness.nn.fused``'s all-op pass,
weighted by the hard one-hot) computes all eight ops of every edge: the DARTS step's arithmetic, 117 ms a
step on an H200 against the eager step's 191 ms (BENCHMARKS.md), where the issue asks for 3x. This form
computes, per edge, what the chosen op needs and little more:

* **One conv slot per edge.** An edge's separable and dilated convolutions (ReLU -> depthwise k x k at
  dilation d -> 1x1 -> BN, once or twice) differ in k, d and in their weights. The slot is one such chain
  whose weights are gathered on the device from the chosen op's (a weight row per (edge, conv op); an
  edge whose chosen op is not a conv gathers its first conv op's, whose output then gets weight zero),
  and whose depthwise geometry (k, d, padding) is read by the kernels from a per-unit table
  (:mod:`harness.nn.dwconv`'s ``geo``: Triton kernels, 5x5 tap grid, taps outside k x k masked). A
  two-stage op's second stage runs for every edge that has one; the node sums take the first stage's
  output where a dilated conv was chosen, the second's where a separable one was.
* **Pools once per source.** A pool followed by BatchNorm without affine parameters (the DARTS search
  ops) gives the same output on every edge that leaves the source: it is computed once.
* **Skips**: the identity is the source itself; the stride-2 FactorizedReduce runs for every edge of
  the source (its 1x1 convolutions are cheap), its output weighted zero where not chosen.
* **BatchNorm running statistics as the eager cell keeps them**: each slot normalises by its batch
  statistics (what the chosen op's module does in training) and writes the running statistics back to the
  chosen op's module only (gathered from, and scattered to, rows of one tensor the modules' buffers are
  views of; a unit whose chosen op has no such BatchNorm writes a scratch row). The all-op pass updates
  every op's.
* **One weighted sum per source**: (B, targets, units) @ (B, units, C*H*W), as the fused cell does, with
  A[target, unit] = w[edge, chosen op] where that unit holds the chosen op's output, 0 elsewhere, plus the
  single-path bias sum_{j != k} w[j] of every edge (``SinglePathBody.fused_forward``'s formula).

**K sample groups** (ROME's grouped pass: the batch K blocks of the same images, each weighted by its own
sampled architecture) run as one pass: every unit once per sample, sample s's units reading block s (the
depthwise kernels' per-unit sample offset), their outputs side by side per image, (B, K*units*C), so that
each BatchNorm channel's statistics are one sample's; a module that several samples chose has its running
statistics updated as the eager K-loop's successive forwards would, in sample order (:meth:`_Gathered.finish`).

Same math as the eager single-path cell: ``tests/test_slots.py`` runs search steps through it (Triton's
interpreter on a CPU) against the eager cell and the eager K-loop in float64, BatchNorm running statistics
included. Runs where :mod:`harness.nn.dwconv` can (CUDA; a CPU only in Triton's interpreter), in training
forwards from the first captured step on, for cells whose every op it knows (the DARTS spaces, S4's
``noise`` drawn for every edge as the all-op pass draws it; not NAS-Bench-201's dense convs); anything else
keeps the other forms. On by default where it can run since an H200 timed it (GDAS 67.1 against 106.2 ms a
captured step, ROME v2 332.9 against 495.4 ms for its chosen-op pass, 2026-12-05; BENCHMARKS.md):
``cell.slots`` (``harness.nn.cells.SinglePathConfig.slots``: auto, true or false; a run records whether it ran).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.nn import dwconv, groups
from harness.nn.fused import _AvgPool, _FusedBN, _MaxPool, _flatten, _layer_key, _pointwise
from harness.nn.ops import FactorizedReduce, Identity, Noise, Zero

KMAX = 5  # the depthwise tap grid: every DARTS conv's k x k fits (sep/dil 3x3 and 5x5)


def _conv_stages(module: nn.Module, c: int, stride: int) -> list[tuple] | None:
    """A conv op as its stages (k, dilation, depthwise conv, 1x1 conv, BatchNorm), 1 or 2 of them, or None
    if it is not ReLU -> depthwise (odd k <= KMAX, "same" padding) -> 1x1 (C -> C) -> BN, once or twice, the
    stride in the first depthwise conv."""
    layers = _flatten(module)
    if layers is None or len(layers) not in (4, 8):
        return None
    stages = []
    for i in range(0, len(layers), 4):
        relu, dw, pw, bn = layers[i:i + 4]
        keys = [_layer_key(m) for m in (relu, dw, pw, bn)]
        if keys[0] != ("relu",) or None in keys or keys[1][:2] != ("conv", "dw") or keys[3][0] != "bn":
            return None
        _, _, c_in, _, (kh, kw), st, pad, dil = keys[1]
        s = stride if i == 0 else 1
        if (c_in != c or kh != kw or kh % 2 == 0 or kh > KMAX or dil[0] != dil[1] or st != (s, s)
                or pad != (dil[0] * (kh - 1) // 2,) * 2):
            return None
        if keys[2] != ("conv", "dense", c, c, (1, 1), (1, 1), (0, 0), (1, 1)):
            return None
        stages.append((kh, dil[0], dw, pw, bn))
    return stages


def _pool(module: nn.Module, stride: int):
    """A pool followed by an affine-free BatchNorm: (its key, the pool layer, the BatchNorm), else None."""
    layers = _flatten(module)
    if layers is None or len(layers) != 2:
        return None
    key, bn = _layer_key(layers[0]), _layer_key(layers[1])
    if key is None or key[0] not in ("maxpool", "avgpool") or bn is None or bn[0] != "bn" or bn[2]:
        return None
    if _pair(key[2]) != (stride, stride):
        return None
    return key + bn, layers[0], layers[1]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def why_not(body) -> str | None:
    """Why this form cannot run ``body``'s cell (None: it can)."""
    spec = body.spec
    bn_keys = set()
    for e in range(len(spec.edges)):
        for k, op in enumerate(body.ops[e]):
            stride = spec.strides[e]
            if isinstance(op, (Zero, Identity, Noise)):
                continue
            if isinstance(op, FactorizedReduce):
                bn_keys.add(_layer_key(op.bn))
                continue
            pool = _pool(op, stride)
            if pool is not None:
                bn_keys.add(_layer_key(pool[2]))
                continue
            stages = _conv_stages(op, spec.channels, stride)
            if stages is None:
                return f"edge {e}'s op {spec.ops[e][k]!r} ({type(op).__name__}) is not one it knows"
            bn_keys.update(_layer_key(st[4]) for st in stages)
    for src in sorted({src for src, _ in spec.edges}):
        if all(isinstance(op, Zero) for e, (s, _) in enumerate(spec.edges) if s == src for op in body.ops[e]):
            return f"every op leaving node {src} is none"
    if None in bn_keys or any(not key[3] for key in bn_keys):
        return "a BatchNorm without running statistics"
    if any(key[2] for key in bn_keys):
        return "an affine BatchNorm (search cells' are not)"
    if len({key[4:] for key in bn_keys}) > 1:
        return "BatchNorms with different eps or momentum"
    return None


def asking(modules) -> list:
    """The single-path bodies among ``modules`` that take this form wherever it can run (``cell.slots`` true or
    auto)."""
    return [m for m in modules if getattr(m, "slots", False) in (True, "auto")]


def why_not_run(bodies, device: torch.device, captured: bool) -> str | None:
    """Why single-path ``bodies`` asked for this form (``cell.slots=true``) will not take it in a run on
    ``device`` whose step is ``captured`` or not (None: they will)."""
    if not captured:
        return "the search step is not captured in a CUDA graph (the form runs from the first captured step)"
    why = dwconv.why_not(torch.empty(0, device=device))
    if why is not None:
        return why
    for body in bodies:
        why = why_not(body)
        if why is not None:
            return f"{body.kind} cell: {why}"
    return None


class _Stage:
    """Stage 1 or 2 of the conv slots of one source's edges: per unit (edge) its candidate conv ops' layers of
    that stage, ``units`` of them; the units' place in the cell's gathered tensors is ``first`` onwards
    (:class:`_Gathered`)."""

    def __init__(self, per_unit: list[list[tuple]], c: int, stride: int, reads_source: bool):
        # per_unit[u]: [(op column, (k, d, dw, pw, bn)), ...]; reads_source: the first stage (every unit reads
        # the source), else the second (each unit its own input)
        self.per_unit, self.c, self.stride, self.reads_source = per_unit, c, stride, reads_source
        self.units = len(per_unit)
        self.first = 0  # its first unit in the cell's gathered tensors
        self.part = 0  # its chunk of the cell's gathered weights (_Gathered.dw, .pw)

    def __call__(self, h: torch.Tensor, g: "_Gathered") -> torch.Tensor:
        """``h``: the source (K*B, C, H, W) (the first stage: every unit of sample s reads its block s), or
        the units' inputs side by side, (B, K*U*C, H, W). -> (B, K*U*C, H', W'): sample s's units at channels
        [s*U*C, (s+1)*U*C) (``K`` = g.k sample groups; for K = 1 the layout of one sample)."""
        k = g.k
        c, u, a = self.c, k * self.units, k * self.first
        b = a + u
        w = g.dw[self.part].view(u * c, 1, KMAX, KMAX)
        s = (self.stride, self.stride)
        geo = (g.geo[a:b], c, k if self.reads_source else 1)
        h = dwconv.depthwise_conv(h, w, s, (KMAX // 2,) * 2, (1, 1), 1, relu=True, geo=geo)
        h = _pointwise(h, g.pw[self.part].view(u * c, c, 1, 1), u)
        return g.batch_norm(h, a, b)


class _Pass:
    """The ops leaving one source: conv slots (stage 1 for every edge with a conv op, stage 2 for every
    edge with a two-stage one), each pool kind once, the identity, the FactorizedReduce units; ``links``
    maps (edge, op column) to the unit (column of U) holding that op's output."""

    def __init__(self, body, src: int):
        spec = body.spec
        c = spec.channels
        self.src = src
        self.edges = [e for e, (s, _) in enumerate(spec.edges) if s == src]
        self.stride = spec.strides[self.edges[0]]
        self.targets = sorted({spec.edges[e][1] for e in self.edges})
        self.links: list[tuple[int, int, int, int]] = []  # (target index, unit column, edge, op column)
        conv1, conv2, pools, frs, noises = [], [], {}, [], []
        kinds: dict[tuple[int, int], tuple] = {}
        has_identity = False
        for e in self.edges:
            first, second = [], []
            for k, op in enumerate(body.ops[e]):
                if isinstance(op, Zero):
                    continue
                if isinstance(op, Identity):
                    has_identity = True
                    kinds[(e, k)] = ("identity",)
                elif isinstance(op, Noise):
                    noises.append((e, k))
                    kinds[(e, k)] = ("noise", len(noises) - 1)
                elif isinstance(op, FactorizedReduce):
                    frs.append((e, k, op))
                    kinds[(e, k)] = ("fr", len(frs) - 1)
                elif (pool := _pool(op, self.stride)) is not None:
                    members = pools.setdefault(pool[0], [])
                    members.append((e, k, pool[2]))
                    kinds[(e, k)] = ("pool", pool[0])
                else:
                    stages = _conv_stages(op, c, self.stride)
                    first.append((k, stages[0]))
                    if len(stages) == 2:
                        second.append((k, stages[1]))
                    kinds[(e, k)] = ("conv", len(stages))
            if first:
                conv1.append((e, first))
            if second:
                conv2.append((e, second))
        self.conv1 = _Stage([cands for _, cands in conv1], c, self.stride, True) if conv1 else None
        self.conv1_edges = [e for e, _ in conv1]
        self.conv2 = _Stage([cands for _, cands in conv2], c, 1, False) if conv2 else None
        self.conv2_edges = [e for e, _ in conv2]
        # stage 2 reads the stage-1 outputs of its units (all of them, or a selection)
        self.conv2_from = [self.conv1_edges.index(e) for e in self.conv2_edges]
        self.pools = list(pools.items())  # [(key, [(edge, op column, its BatchNorm)])]
        self.pool_no: list[int] = []  # each pool's number in the cell (its batch statistics' row)
        self.frs = frs
        self.fr_first = 0
        self.has_identity = has_identity
        self.noises = noises  # (edge, op column) of each noise op (drawn by ChosenSlots.run)
        # unit columns: stage-1 units, stage-2 units, pools, identity, FactorizedReduce units, noise units
        n1, n2 = len(conv1), len(conv2)
        pool_col = {key: n1 + n2 + i for i, (key, _) in enumerate(self.pools)}
        id_col = n1 + n2 + len(self.pools)
        fr_col = id_col + int(has_identity)
        noise_col = fr_col + len(frs)
        self.n_units = noise_col + len(noises)
        for (e, k), kind in kinds.items():
            t = self.targets.index(spec.edges[e][1])
            if kind[0] == "conv":
                col = self.conv1_edges.index(e) if kind[1] == 1 else n1 + self.conv2_edges.index(e)
            elif kind[0] == "pool":
                col = pool_col[kind[1]]
            elif kind[0] == "identity":
                col = id_col
            elif kind[0] == "noise":
                col = noise_col + kind[1]
            else:
                col = fr_col + kind[1]
            self.links.append((t, col, e, k))

    def units(self, x: torch.Tensor, g: "_Gathered", noise: dict) -> list[torch.Tensor]:
        """The unit outputs of this source's ops for the chosen ops, in column order, each as (K, B, units,
        C*H*W) (sample s's block of the batch, its units side by side; views where the layout allows);
        ``noise``: each noise op's draw, by (edge, op column)."""
        k = g.k
        hs = []

        def by_sample(h, units):  # (B, K*units*C, H, W) -> (K, B, units, C*H*W), a view
            return h.view(h.shape[0], k, units, -1).transpose(0, 1)

        if self.conv1 is not None:
            h1 = self.conv1(x, g)
            hs.append(by_sample(h1, self.conv1.units))
            if self.conv2 is not None:
                if self.conv2_from != list(range(len(self.conv1_edges))):
                    n, _, hh, ww = h1.shape
                    h1 = h1.view(n, k, -1, self.conv1.c, hh, ww).index_select(
                        2, _edge_index(self.conv2_from, x.device)).view(n, -1, hh, ww)
                hs.append(by_sample(self.conv2(h1, g), self.conv2.units))
        for (key, members), pool_no in zip(self.pools, self.pool_no):
            if key[0] == "maxpool":
                _, kk, st, p, ceil = key[:5]
                h = _MaxPool.apply(x, kk, st, p, ceil) if groups.capturing(x) else F.max_pool2d(x, kk, st, p, 1, ceil)
            else:
                _, kk, st, p, ceil, include = key[:6]
                h = (_AvgPool.apply(x, kk, st, p, ceil, include) if groups.capturing(x)
                     else F.avg_pool2d(x, kk, st, p, ceil, include))
            hs.append(by_sample(g.shared_batch_norm(_samples_in_channels(h, k), pool_no), 1))
        if self.has_identity:
            hs.append(x.view(k, x.shape[0] // k, 1, -1))
        if self.frs:
            hs.append(by_sample(self._fr(x, g), len(self.frs)))
        for ek in self.noises:
            out = noise[ek]
            hs.append(out.view(k, out.shape[0] // k, 1, -1))
        return hs

    def _fr(self, x: torch.Tensor, g: "_Gathered") -> torch.Tensor:
        """Every FactorizedReduce unit (FactorizedReduce.forward: ReLU, two 1x1 stride-2 convs, the second
        on the input shifted by a pixel, side by side, BatchNorm), the convs dense on the shared input."""
        mods = [op for _, _, op in self.frs]
        m, half = len(mods), mods[0].conv_1.out_channels
        h = F.relu(x)
        shifted = h[:, :, 1:, 1:]
        if shifted.shape[-1] < 1 or shifted.shape[-2] < 1:
            shifted = h
        a = F.conv2d(h, torch.cat([f.conv_1.weight for f in mods]), None, 2)
        b = F.conv2d(shifted, torch.cat([f.conv_2.weight for f in mods]), None, 2)
        if b.shape[-2:] != a.shape[-2:]:
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        n, _, hh, ww = a.shape
        h = torch.stack([a.view(n, m, half, hh, ww), b.view(n, m, half, hh, ww)], dim=2).view(n, m * 2 * half, hh, ww)
        return g.batch_norm(_samples_in_channels(h, g.k), g.k * self.fr_first, g.k * (self.fr_first + m))


class _Gathered:
    """One forward's chosen-op tensors for a whole cell, each made by one gather over all its units (stage
    units first, in pass order; then pool and FactorizedReduce units), for ``k`` sample groups: each unit
    once per sample, a segment's (stage's, pool's, FactorizedReduce group's) units sample by sample. What
    is gathered: the depthwise weights on the KMAX grid and their geometry, the 1x1 weights (stage units),
    and the running statistics of each unit's chosen BatchNorm (every unit; a unit whose chosen op has none,
    or whose edge its sample left out, reads and writes the scratch row). BatchNorm calls update slices of
    ``rm``/``rv`` (through ``.data`` aliases: each call's saved running statistics, which its backward does
    not read in training, keep their own version counter while later calls update other slices), written
    back to the modules' rows once, by :meth:`finish`."""

    def __init__(self, slots: "ChosenSlots", index: torch.Tensor, active, like: torch.Tensor, k: int):
        self.tables = t = slots.tables(like.device, k)
        self.slots, self.k = slots, k
        choice = index.reshape(-1).index_select(0, t["inst_edge"]).unsqueeze(1)
        self.target = t["bn_target"].gather(1, choice).squeeze(1)
        if active is not None:  # an edge its sample left out runs nothing: no statistics to keep
            on = active.reshape(-1).index_select(0, t["inst_edge"])
            self.target = torch.where(on, self.target, len(slots.bns))
        if slots.conv_rows:
            rows = t["row_of"].gather(1, choice[:k * slots.conv_units]).squeeze(1)
            self.geo = t["geo"].index_select(0, rows)
            flat = torch.cat([st[2].weight.reshape(-1) for _, _, st in slots.conv_rows] + [like.new_zeros(1)])
            self.dw = flat[t["taps"].index_select(0, rows)]
            self.pw = torch.stack([st[3].weight for _, _, st in slots.conv_rows]).index_select(0, rows)
            # one chunk per stage (split: its backward is one concatenation, where a slice's writes a
            # zero tensor of the whole size)
            sizes = [k * n for n in slots.stage_units]
            self.dw, self.pw = self.dw.split(sizes), self.pw.split(sizes)
        self.rows = slots.statistics()  # the modules' statistics, written back by finish()
        self.rm = self.rows[0].index_select(0, self.target)
        self.rv = self.rows[1].index_select(0, self.target)
        self.start = (self.rm.clone(), self.rv.clone()) if k > 1 else None
        # each pool's per-sample batch mean and unbiased variance (rows 0 and 1), for its units' statistics
        self.pool_stats = like.new_zeros(2, slots.n_pools, k * slots.c) if slots.n_pools else None

    def batch_norm(self, h: torch.Tensor, a: int, b: int) -> torch.Tensor:
        """Instances a..b's BatchNorm of ``h`` (B, (b-a)*C, H, W) in training, their running statistics
        updated."""
        sl = self.slots
        return groups.batch_norm(h, self.rm.data[a:b].view(-1), self.rv.data[a:b].view(-1), None, None, True,
                                 sl.momentum, sl.eps, 1)

    def shared_batch_norm(self, h: torch.Tensor, j: int) -> torch.Tensor:
        """One input ``h`` (B, K*C, H, W) normalised for all units of pool ``j`` alike (the same output: no
        affine parameters); its batch statistics kept for their running statistics (:meth:`finish`)."""
        # momentum 1 on zeros: the running buffers become the batch's own mean and unbiased variance
        return groups.batch_norm(h, self.pool_stats.data[0, j], self.pool_stats.data[1, j], None, None, True, 1.0,
                                 self.slots.eps, 1)

    def finish(self) -> None:
        """The chosen modules' running statistics and batch counters, written back: with K samples, a module
        that several samples chose is updated as K successive forwards would, in sample order."""
        sl, k = self.slots, self.k
        t = self.tables
        m = sl.momentum
        with torch.no_grad():
            if self.pool_stats is not None:  # the pool units' running statistics, as BatchNorm updates them
                lo, hi = sl.pool_units
                stats = self.pool_stats.view(2, -1, sl.c).index_select(1, t["pool_stat_row"])
                self.rm[k * lo:k * hi].mul_(1 - m).add_(stats[0], alpha=m)
                self.rv[k * lo:k * hi].mul_(1 - m).add_(stats[1], alpha=m)
            if k == 1:
                self.rows[0].index_copy_(0, self.target, self.rm)
                self.rows[1].index_copy_(0, self.target, self.rv)
            else:
                # per unit, its K instances: those with the same target row (the same op chosen) in sample
                # order. Row value after them: q^n r0 + sum_j q^(later_j) (v_j - q r0), q = 1 - momentum,
                # v_j the instance's own update of r0, later_j how many of them come after j
                inst = t["inst_of"]  # (K, units)
                tg = self.target[inst]
                valid = tg != len(sl.bns)
                same = (tg.unsqueeze(1) == tg.unsqueeze(0)) & valid.unsqueeze(1) & valid.unsqueeze(0)  # [s, s', u]
                later = (same & t["after"]).sum(1)  # [s, u]: instances after s with its row
                q = 1.0 - m
                dt = self.rm.dtype
                coef = same.to(dt) * torch.pow(q, later.to(dt)).unsqueeze(0)  # [s, s', u]: q^later[s']
                lead = torch.pow(q, same.sum(1).to(dt)).unsqueeze(-1)  # [s, u, 1]: q^n
                for now, start, buf in ((self.rm, self.start[0], self.rows[0]), (self.rv, self.start[1], self.rows[1])):
                    r0, v = start[inst], now[inst]  # (K, units, C)
                    out = lead * r0 + torch.einsum("abu,buc->auc", coef, v - q * r0)
                    buf.index_copy_(0, tg.reshape(-1), out.reshape(-1, sl.c))
            counts = self.rows[2]
            counts.index_add_(0, self.target, torch.ones_like(self.target, dtype=counts.dtype))


_INDEX_CACHE: dict = {}


def _edge_index(values: list[int], device) -> torch.Tensor:
    """A constant index tensor on ``device`` (made once: a captured graph cannot copy from the host)."""
    key = (tuple(values), device)
    out = _INDEX_CACHE.get(key)
    if out is None:
        out = _INDEX_CACHE[key] = torch.tensor(values, dtype=torch.long, device=device)
    return out


def _samples_in_channels(h: torch.Tensor, k: int) -> torch.Tensor:
    """(K*B, C, H, W), K sample blocks -> (B, K*C, H, W), sample s at channels [s*C, (s+1)*C): the layout in
    which a BatchNorm's per-channel statistics are per sample (a copy for K > 1)."""
    if k == 1:
        return h
    n, c = h.shape[0] // k, h.shape[1]
    return h.view(k, n, c, *h.shape[2:]).transpose(0, 1).reshape(n, k * c, *h.shape[2:])


class ChosenSlots:
    """A single-path body's forward in this module's form (see the module docstring). Holds references to
    the body's op modules; makes their BatchNorm buffers views of its own tensors at first use."""

    def __init__(self, body):
        why = why_not(body)
        if why is not None:
            raise ValueError(f"the chosen-slot form cannot run this {body.kind} cell: {why}")
        spec = body.spec
        self.body = body
        self.c = spec.channels
        self.n_inputs, self.n_nodes = spec.n_inputs, spec.n_nodes
        sources = sorted({src for src, _ in spec.edges})
        self.passes = [_Pass(body, src) for src in sources]
        # the cell's units: stage units (pass by pass, stage 1 then 2), then pool and FactorizedReduce units;
        # per unit its edge and {op column: its BatchNorm's row}; conv weight rows per stage unit
        self.conv_rows: list[tuple] = []  # (unit, op column, (k, d, dw, pw, bn))
        self.bns: list[nn.BatchNorm2d] = []
        units: list[tuple[int, dict[int, int]]] = []
        for p in self.passes:
            for stage, edges in ((p.conv1, p.conv1_edges), (p.conv2, p.conv2_edges)):
                if stage is None:
                    continue
                stage.first = len(units)
                for e, cands in zip(edges, stage.per_unit):
                    bn_rows = {}
                    for col, st in cands:
                        self.conv_rows.append((len(units), col, st))
                        bn_rows[col] = len(self.bns)
                        self.bns.append(st[4])
                    units.append((e, bn_rows))
        self.conv_units = len(units)
        self.stage_units = [st.units for p in self.passes for st in (p.conv1, p.conv2) if st is not None]
        for i, st in enumerate(st for p in self.passes for st in (p.conv1, p.conv2) if st is not None):
            st.part = i
        # pool units (every pass's), then FactorizedReduce units
        self.pool_of_unit: list[int] = []  # each pool unit's pool number
        n_pools = 0
        for p in self.passes:
            p.pool_no = []
            for _, members in p.pools:
                p.pool_no.append(n_pools)
                for e, col, bn in members:
                    units.append((e, {col: len(self.bns)}))
                    self.bns.append(bn)
                    self.pool_of_unit.append(n_pools)
                n_pools += 1
        self.n_pools = n_pools
        self.pool_units = (self.conv_units, len(units))
        for p in self.passes:
            p.fr_first = len(units)
            for e, col, op in p.frs:
                units.append((e, {col: len(self.bns)}))
                self.bns.append(op.bn)
        self.units = units
        # segments of units laid out sample by sample for K sample groups: each stage, each pool, each pass's
        # FactorizedReduce units (unit u of segment [a, b), sample s: instance a*K + s*(b - a) + u - a)
        self.segments: list[tuple[int, int]] = []
        for p in self.passes:
            for stage in (p.conv1, p.conv2):
                if stage is not None:
                    self.segments.append((stage.first, stage.first + stage.units))
        pool_start = self.conv_units
        for p in self.passes:
            for _, members in p.pools:
                self.segments.append((pool_start, pool_start + len(members)))
                pool_start += len(members)
        for p in self.passes:
            if p.frs:
                self.segments.append((p.fr_first, p.fr_first + len(p.frs)))
        self.eps, self.momentum = self.bns[0].eps, self.bns[0].momentum
        # the modules' running buffers: rows of one tensor per statistic, a scratch row after them
        self.stats = _FusedBN(self.bns, scratch=True)
        self._tables: dict = {}
        self._consts: dict = {}

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(running means (rows + 1, C), running variances (rows + 1, C), batch counters (rows + 1,)): the rows
        the modules' buffers are views of (bound on first use, again if a module's buffer was replaced)."""
        self.stats.bind()
        return self.stats.rm.view(-1, self.c), self.stats.rv.view(-1, self.c), self.stats.nbt

    def tables(self, device, samples: int = 1) -> dict:
        """The cell's constant index tables on ``device``, made once (a captured graph cannot copy from the
        host): each unit's edge; per (unit, op column) its BatchNorm row (the scratch row if that op has none
        here) and, for stage units, its weight row (the unit's first where that op is not one of its convs);
        per weight row the depthwise geometry (k, dilation, padding) and the gather of its taps onto the KMAX
        grid from the flat weights (taps outside k x k: the zero after them); for K ``samples``, each
        per instance (unit, sample) in the segments' layout, with where each (sample, unit) is (``inst_of``),
        which sample comes after which (``after``) and each pool instance's statistics row."""
        if (device, samples) in self._tables:
            return self._tables[(device, samples)]
        n_ops, c = len(self.body.ops[0]), self.c
        scratch = len(self.bns)
        bn_target = torch.full((len(self.units), n_ops), scratch, dtype=torch.long)
        for u, (_, bn_rows) in enumerate(self.units):
            for col, row in bn_rows.items():
                bn_target[u, col] = row
        out = {}
        if self.conv_rows:
            row_of = torch.full((self.conv_units, n_ops), -1, dtype=torch.long)
            for r, (u, col, _) in enumerate(self.conv_rows):
                row_of[u, col] = r
            for u in range(self.conv_units):
                row_of[u][row_of[u] < 0] = int(row_of[u][row_of[u] >= 0][0])
            out["geo"] = torch.tensor([[k, d, d * (k - 1) // 2] for _, _, (k, d, *_rest) in self.conv_rows],
                                      dtype=torch.int32)
            taps = torch.full((len(self.conv_rows), c, KMAX, KMAX), -1, dtype=torch.long)
            offset = 0
            for r, (_, _, (k, *_rest)) in enumerate(self.conv_rows):
                taps[r, :, :k, :k] = torch.arange(offset, offset + c * k * k).view(c, k, k)
                offset += c * k * k
            taps[taps < 0] = offset
            out["taps"] = taps.view(len(self.conv_rows), -1)
        # instances: unit u of segment [a, b) for sample s at a*K + s*(b - a) + u - a
        n_edges = len(self.body.spec.edges)
        base, inst_of = [], torch.zeros(samples, len(self.units), dtype=torch.long)
        for a, b in self.segments:
            for smp in range(samples):
                for u in range(a, b):
                    inst_of[smp, u] = len(base)
                    base.append((smp, u))
        pool_of = {}
        for j, u in enumerate(range(*self.pool_units)):
            pool_of[u] = self.pool_of_unit[j]
        lo, hi = self.pool_units
        base_idx = torch.tensor([u for _, u in base], dtype=torch.long)
        out["inst_edge"] = torch.tensor([smp * n_edges + self.units[u][0] for smp, u in base], dtype=torch.long)
        out["bn_target"] = bn_target.index_select(0, base_idx)
        if self.conv_rows:
            out["row_of"] = row_of.index_select(0, base_idx[:samples * self.conv_units])
        out["pool_stat_row"] = torch.tensor([pool_of[u] * samples + smp for smp, u in base[samples * lo:samples * hi]],
                                            dtype=torch.long)
        out["inst_of"] = inst_of
        order = torch.arange(samples)
        out["after"] = order.view(1, -1, 1) > order.view(-1, 1, 1)  # [s, s', 1]: s' comes after s
        self._tables[(device, samples)] = out = {key: v.to(device) for key, v in out.items()}
        return out

    def _matrices(self, device, dtype, n_ops: int):
        """(mix, inc, offsets): ``mix`` (edges*ops, sum_p targets_p*units_p) takes the chosen-op weights to
        every pass's A[target, unit]; ``inc`` (edges, sum_p targets_p) the edge -> target incidence (where the
        bias goes), as ``FusedMixed._consts`` makes them."""
        key = (device, dtype, n_ops)
        if key not in self._consts:
            edges = self.body.spec.edges
            cells = sum(len(p.targets) * p.n_units for p in self.passes)
            mix = torch.zeros(len(edges) * n_ops, cells)
            inc = torch.zeros(len(edges), sum(len(p.targets) for p in self.passes))
            offsets, cell_off, target_off = [], 0, 0
            for p in self.passes:
                for t, col, e, k in p.links:
                    mix[e * n_ops + k, cell_off + t * p.n_units + col] = 1.0
                for e in p.edges:
                    inc[e, target_off + p.targets.index(edges[e][1])] = 1.0
                offsets.append((cell_off, target_off))
                cell_off += len(p.targets) * p.n_units
                target_off += len(p.targets)
            self._consts[key] = (mix.to(device=device, dtype=dtype), inc.to(device=device, dtype=dtype), offsets)
        return self._consts[key]

    def run(self, states, index: torch.Tensor, chosen: torch.Tensor, bias: torch.Tensor,
            active: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Node j = sum over edges e into j of chosen[e] * op_{index[e]}(x_src) + bias[e]: ``index`` (edges,)
        the sampled ops, ``chosen`` (edges,) each one's weight, ``bias`` (edges,) (the edge scales folded in),
        ``active`` (edges,) whether the sample keeps the edge (None: all). For K sample groups (the states K
        blocks of the batch, sample-major) each is (K, edges), block s computed with row s."""
        k = index.shape[0] if index.dim() == 2 else 1
        n_ops = len(self.body.ops[0])
        index, chosen, bias = index.reshape(k, -1), chosen.reshape(k, -1), bias.reshape(k, -1)
        w = torch.zeros(k, index.shape[1], n_ops, dtype=chosen.dtype, device=chosen.device)
        w = w.scatter(2, index.unsqueeze(2), chosen.unsqueeze(2))
        mix, inc, offsets = self._matrices(w.device, w.dtype, n_ops)
        a_all = w.view(k, -1) @ mix
        node_bias_all = bias @ inc
        states = list(states)
        g = _Gathered(self, index, active, states[0], k)
        noise = self._draw_noise(states)
        acc: dict[int, torch.Tensor] = {}
        for p, (cell_off, target_off) in zip(self.passes, offsets):
            while len(states) <= p.src:
                states.append(acc.pop(len(states)))
            x = states[p.src]
            hs = p.units(x, g, noise)  # each (K, B, units, C*H*W)
            n = x.shape[0] // k
            nt, nu = len(p.targets), p.n_units
            # U: the units side by side per image, sample by sample; every image of block s weighted by
            # sample s's (targets, units) matrix (stride 0 within the block)
            u_all = (hs[0] if len(hs) == 1 else torch.cat(hs, dim=2)).reshape(k * n, nu, -1)
            a = a_all[:, cell_off:cell_off + nt * nu].view(k, 1, nt, nu)
            contrib = torch.bmm(a.expand(k, n, nt, nu).reshape(k * n, nt, nu), u_all)
            node_bias = node_bias_all[:, target_off:target_off + nt].view(k, 1, nt, 1)
            contrib = contrib + node_bias.expand(k, n, nt, 1).reshape(k * n, nt, 1)
            shape = (k * n, self.c) + self._spatial(x, p)
            for dst, part in zip(p.targets, contrib.unbind(1)):
                part = part.view(shape)
                acc[dst] = part if dst not in acc else acc[dst] + part
        g.finish()
        while len(states) < self.n_inputs + self.n_nodes:
            states.append(acc.pop(len(states)))
        return states

    def _draw_noise(self, states) -> dict:
        """Every noise op's output (RobustDARTS S4), drawn now for every edge that has one, whichever op was
        chosen, in the eager cell's order (node by node, edge by edge), as the all-op pass draws them: only the
        shape matters (an intermediate node's is the cell inputs' at the input edges' stride). The eager
        single-path cell draws only for the edges that chose noise, so its random stream differs."""
        spec, ops = self.body.spec, self.body.ops
        first = next(e for e, (src, _) in enumerate(spec.edges) if src == 0)
        s = spec.strides[first]
        node_like = states[0] if s == 1 else states[0][:, :, ::s, ::s]
        out = {}
        for dst in range(self.n_inputs, self.n_inputs + self.n_nodes):
            for e in self.body.incoming[dst]:
                src = spec.edges[e][0]
                for k, op in enumerate(ops[e]):
                    if isinstance(op, Noise):
                        out[(e, k)] = op(states[src] if src < self.n_inputs else node_like)
        return out

    @staticmethod
    def _spatial(x: torch.Tensor, p: "_Pass") -> tuple[int, int]:
        """The (H, W) of a pass's outputs: its source's at its stride ("same" padding)."""
        h, w = x.shape[-2:]
        return ((h - 1) // p.stride + 1, (w - 1) // p.stride + 1)
