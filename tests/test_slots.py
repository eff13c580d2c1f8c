"""harness.nn.slots: a single-path cell's sampled op per edge chosen on the device (one conv slot per edge with
the chosen op's weights and depthwise geometry, pools once per source, BatchNorm statistics to the chosen op
only) computes what the eager single-path cell computes: per-unit-geometry depthwise kernels against
``F.conv2d`` unit by unit, and GDAS search steps against the eager cell in float64, running statistics
included (Triton's interpreter on this CPU)."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="Triton is not installed (it comes with torch's CUDA wheels)")

from harness.api import ArchWeights  # noqa: E402
from harness.nn import dwconv, groups, slots  # noqa: E402
from harness.nn.cells import SinglePathBody, set_fast  # noqa: E402
from tests.searchkit import method_parts, random_batches  # noqa: E402


def _unit_reference(x, weights, geometry, stride, shared, samples=1, relu=True):
    """Unit by unit: ``F.conv2d`` of unit u's input (the shared x, or its own C channels; with K samples,
    units in K runs, run s reading x's image block s) with its k x k weights (the top-left corner of the 5x5
    grid) at its dilation and "same" padding."""
    c = weights.shape[0] // len(geometry)
    x = x.clamp_min(0) if relu else x
    per_sample = len(geometry) // samples
    n = x.shape[0] // samples
    outs = []
    for u, (k, d) in enumerate(geometry):
        xu = x[(u // per_sample) * n:(u // per_sample + 1) * n]
        xu = xu if shared else xu[:, u * c:(u + 1) * c]
        w = weights[u * c:(u + 1) * c, :, :k, :k]
        outs.append(F.conv2d(xu, w, None, stride, d * (k - 1) // 2, d, c))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("stride, shared, size, samples, c", [
    (1, True, 7, 1, 3), (2, True, 8, 1, 3), (1, False, 6, 1, 3), (2, False, 9, 1, 3), (1, True, 6, 2, 3),
    (2, True, 7, 3, 3),
    # 4 channels a unit: the kernels' programs take several channels of one unit at a time (whole tiles)
    (1, True, 8, 1, 4), (1, False, 8, 2, 4)])
def test_per_unit_geometry_kernels_compute_each_units_convolution(interpret, request, stride, shared, size, samples,
                                                                   c):
    """Units (sep 3x3, sep 5x5, dil 3x3, dil 5x5: k, dilation) of C channels, reading one shared input (a
    slot's first stage) or each its own (the second), the ReLU fused; with K sample groups the input is K
    blocks of images and each sample's units read its block: output, input gradient and weight gradient
    equal ``F.conv2d``'s per unit in float64 (1e-12); the taps outside each unit's k x k get no gradient."""
    if samples > 1:  # the sample groups' index arithmetic under the interpreter's int32 overflow check (it
        request.getfixturevalue("overflow_checked")  # doubles a case's time, so not on every case)
    torch.manual_seed(0)
    geometry = [(3, 1), (5, 1), (3, 2), (5, 2), (5, 1), (3, 2)][:4 if samples == 1 else 2 * samples]
    u = len(geometry)
    x = torch.randn(2 * samples, c if shared else u * c, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(u * c, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    table = torch.tensor([[k, d, d * (k - 1) // 2] for k, d in geometry], dtype=torch.int32)
    y = dwconv.depthwise_conv(x, w, (stride, stride), (2, 2), (1, 1), 1, relu=True, geo=(table, c, samples))
    x2, w2 = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ref = _unit_reference(x2, w2, geometry, stride, shared, samples)
    assert y.shape == ref.shape
    assert float((y - ref).detach().abs().max()) < 1e-12
    g = torch.randn_like(ref)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    rx, rw = torch.autograd.grad(ref, (x2, w2), g)
    assert float((gx - rx).abs().max()) < 1e-12
    assert float((gw - rw).abs().max()) < 1e-12
    assert float(gw[:c, :, 3:, :].abs().max()) == 0.0  # unit 0 is 3x3: rows 3, 4 of its grid are not taps


def test_a_geometry_table_that_does_not_cover_the_channels_is_refused(interpret):
    """The kernels take a program's channels as one unit's: 10 output channels are not units of 4, and 8 are
    not the 3 units a 3-row table describes."""
    table = torch.tensor([[3, 1, 1], [5, 1, 2], [3, 2, 2]], dtype=torch.int32)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    for o, unit_ch, rows in ((10, 4, 3), (8, 4, 3)):
        w = torch.randn(o, 1, 5, 5, dtype=torch.float64)
        with pytest.raises(ValueError, match=f"geo: {o} output channels are not {rows} units of unit_ch={unit_ch}"):
            dwconv.depthwise_conv(x, w, (1, 1), (2, 2), (1, 1), 1, relu=True, geo=(table, unit_ch))


def _run(space_name, slotted, steps, layers=2, method="gdas", sets=()):
    """GDAS on ``space_name``: ``steps`` search steps (architecture step, then weight step) in float64 on the
    fast path, in the captured form (groups.as_captured, as GraphedStep's warm-up and capture run it), with
    cell.slots as given; or (slotted None) the eager cell. Returns losses, alphas, the state dict (running
    statistics included) and the bodies."""
    net, sampler, _, opt = method_parts(method, space_name, channels=2, layers=layers, steps_per_epoch=6,
                                        sets=[("cell", "slots", str(bool(slotted)).lower()), *sets])
    opt.set_progress(0, 1)
    set_fast(net, slotted is not None)
    data = random_batches(steps, size=2, resolution=8)
    torch.manual_seed(7)
    losses = []
    for train, val in data:
        if slotted is None:
            losses.append(float(opt.step(net, train, val).train_loss))
        else:
            with groups.as_captured():
                losses.append(float(opt.step(net, train, val).train_loss))
    bodies = [b for b in net.modules() if isinstance(b, SinglePathBody)]
    net.eval()  # then an evaluation forward (a slot-bound body runs the chosen op per edge)
    torch.manual_seed(11)
    with torch.no_grad():
        evaluated = net(data[0][1].x)
    return losses, [a.detach().clone() for a in sampler.arch_parameters()], net.state_dict(), bodies, evaluated


@pytest.mark.parametrize("space_name, steps", [("darts", 1), ("s1", 1)])
def test_gdas_steps_through_the_slots_follow_the_eager_cell_in_float64(interpret, space_name, steps):
    """GDAS steps on a reduction cell (strides 2 from the inputs, 1 between nodes: every path a normal cell
    takes too): losses, alphas, every weight and every BatchNorm running statistic (the eager cell updates
    only the chosen op's) equal the eager cell's to 1e-9 in float64, and so does an evaluation forward
    after them. darts: eight ops per edge; s1: RobustDARTS's two ops per edge (edges whose only conv is
    dilated, a second stage on some edges only, edges without a conv). One step each (an architecture
    step, then a weight step on the updated alphas; Triton's interpreter: ~8 s for darts)."""
    torch.set_default_dtype(torch.float64)
    try:
        le, ae, we, _, ee = _run(space_name, None, steps, layers=1)
        ls, as_, ws, bodies, es = _run(space_name, True, steps, layers=1)
    finally:
        torch.set_default_dtype(torch.float32)
    assert bodies and all(b._slots is not None and b._fused is None for b in bodies)  # the slots ran, alone
    assert max(abs(a - b) / abs(a) for a, b in zip(le, ls)) < 1e-9
    assert max(float((b - a).abs().max() / a.abs().max()) for a, b in zip(ae, as_)) < 1e-9
    assert we.keys() == ws.keys()
    # relative to each tensor's largest magnitude, or to 1e-6 where that is below (a running mean of pooled
    # BatchNorm outputs is ~1e-17: rounding there is the whole value)
    worst = {k: float((ws[k] - v).abs().max() / v.abs().max().clamp_min(1e-6)) for k, v in we.items()}
    assert max(worst.values()) < 1e-9, max(worst.items(), key=lambda kv: kv[1])
    assert float((es - ee).abs().max() / ee.abs().max()) < 1e-9  # eval mode: the running statistics read
    counts = [k for k in we if k.endswith("num_batches_tracked")]
    assert counts and any(int(we[k]) == 0 for k in counts) and any(int(we[k]) > 0 for k in counts)


@pytest.mark.parametrize("k, layers, chunk", [(2, 1, 0), pytest.param(3, 1, 2, marks=pytest.mark.slow),
                                               pytest.param(3, 2, 0, marks=pytest.mark.slow)])
def test_rome_sample_groups_through_the_slots_follow_the_eager_k_loop_in_float64(interpret, k, layers, chunk):
    """ROME v2 with K samples per update (edges sampled per sample: ``active``) as one grouped pass through
    the slots (each sample's units reading its block of the batch, BatchNorm statistics per sample, and a
    module that several samples chose updated as the eager loop's successive forwards update it) against
    the eager K-loop: one step in float64, losses, alphas, every weight and running statistic to 1e-9.
    K=3 in passes of 2 and 1 (optimizer.sample_chunk=2: the running statistics carried from one pass to the
    next in sample order). (K=2 on one reduction cell, ~20 s in Triton's interpreter; with -m slow also the
    passes of 2 and 1, ~25 s, and K=3 on two cells, ~70 s.)"""
    sets = [("optimizer", "samples", str(k)), ("optimizer", "group_ops", "all"),
            ("optimizer", "sample_chunk", str(chunk))]
    torch.set_default_dtype(torch.float64)
    try:
        le, ae, we, _, ee = _run("darts", None, 1, layers=layers, method="rome-v2", sets=sets)
        ls, as_, ws, bodies, es = _run("darts", True, 1, layers=layers, method="rome-v2", sets=sets)
    finally:
        torch.set_default_dtype(torch.float32)
    assert bodies and all(b._slots is not None and b._fused is None for b in bodies)
    assert max(abs(a - b) / abs(a) for a, b in zip(le, ls)) < 1e-9
    assert max(float((b - a).abs().max() / a.abs().max()) for a, b in zip(ae, as_)) < 1e-9
    worst = {k: float((ws[k] - v).abs().max() / v.abs().max().clamp_min(1e-6)) for k, v in we.items()}
    assert max(worst.values()) < 1e-9, max(worst.items(), key=lambda kv: kv[1])
    counts = [int(we[k]) for k in we if k.endswith("num_batches_tracked")]
    assert max(counts) >= 2  # some op was chosen by more than one sample's forward


def test_slot_forward_reads_nothing_on_the_host(interpret, monkeypatch):
    """The forward chooses on the device: with the sampler's host lists made unreadable, a forward through
    the slots runs (the eager and chosen forms read them)."""
    net, sampler, _, _ = method_parts("gdas", "darts", channels=2, layers=2, sets=[("cell", "slots", "true")])
    set_fast(net, True)
    x = random_batches(1, size=2, resolution=8)[0][0].x

    class Unreadable(dict):
        def __getitem__(self, key):
            raise AssertionError("a host list was read")

    real = sampler.sample

    def sample(*args, **kwargs):
        arch = real(*args, **kwargs)
        return ArchWeights(**{**arch.__dict__, "host_index": Unreadable(), "host_active": None})

    monkeypatch.setattr(sampler, "sample", sample)
    with groups.as_captured():
        out = net(x)
    assert torch.isfinite(out).all()
    assert all(b._slots is not None for b in net.modules() if isinstance(b, SinglePathBody))


def test_cells_it_does_not_know_keep_the_other_forms(interpret):
    """NAS-Bench-201's dense convs are not slots: why_not names the op, and with cell.slots=true the body's
    captured forward takes the all-op pass."""
    sets = [("cell", "slots", "true")]
    nb201, _, _, _ = method_parts("gdas", "nb201", channels=2, layers=1, sets=sets)
    b201 = next(b for b in nb201.modules() if isinstance(b, SinglePathBody))
    assert "nor_conv" in slots.why_not(b201)
    with pytest.raises(ValueError, match="cannot run"):
        slots.ChosenSlots(b201)
    set_fast(nb201, True)
    with groups.as_captured():
        nb201(random_batches(1, size=2, resolution=8)[0][0].x)
    assert all(b.slots and b._slots is None and b._fused is not None
               for b in nb201.modules() if isinstance(b, SinglePathBody))


def test_s4_noise_is_drawn_as_the_all_op_pass_draws_it(interpret):
    """RobustDARTS S4 (noise and sep_conv_3x3 on every edge): the slots draw every noise op's output, chosen or
    not, in the eager cell's order, as the all-op pass does (the eager single-path cell draws only for the
    edges that chose noise). One GDAS step through each captured form: losses, alphas and every weight equal
    to 1e-9 in float64 (running statistics differ by design: the all-op pass updates every op's)."""
    torch.set_default_dtype(torch.float64)
    try:
        la, aa, wa, _, _ = _run("s4", False, 1, layers=1)
        ls, as_, ws, bodies, _ = _run("s4", True, 1, layers=1)
    finally:
        torch.set_default_dtype(torch.float32)
    assert bodies and all(b._slots is not None for b in bodies)
    assert max(abs(a - b) / abs(a) for a, b in zip(la, ls)) < 1e-9
    assert max(float((b - a).abs().max() / a.abs().max()) for a, b in zip(aa, as_)) < 1e-9
    params = [k for k in wa if "running" not in k and "num_batches" not in k]
    assert max(float((ws[k] - wa[k]).abs().max() / wa[k].abs().max().clamp_min(1e-6)) for k in params) < 1e-9


def test_a_run_that_cannot_take_the_slots_says_why(tmp_path):
    """cell.slots=true on a CPU run (no captured step): the run completes in the other forms, and its record
    and log name the reason."""
    from click.testing import CliRunner

    from harness.cli import cli
    from harness.store import ResultStore

    store = tmp_path / "runs.sqlite"
    result = CliRunner().invoke(cli, ["run", "--plugin", "gdas", "--space", "s2", "--dataset", "digits",
                                      "--preset", "smoke", "--store", str(store), "--set", "cell.slots=true",
                                      "--set", "search.epochs=1", "--set", "eval.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "cell.slots=true not used: the search step is not captured in a CUDA graph" in result.output
    (record,) = ResultStore(store).records(None)
    assert record.status == "completed"
    assert "not captured" in record.search["runtime"]["slots_off"] and "slots" not in record.search["runtime"]
