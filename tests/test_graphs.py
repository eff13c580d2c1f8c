"""Whole-step CUDA-graph capture (harness.graphs), what can be checked without a GPU: which components
may be captured, why a run is not, and GraphedStep's bookkeeping (warm-up, static buffers, recapture
per epoch, odd-shaped batches) with the capture replaced by re-running the captured function on the same
static buffers -- which is what a replay does, minus the launch savings. The capture itself is measured
on a GPU by benchmarks/search_step.py --mode graph."""

import contextlib
import dataclasses

import pytest
import torch

from harness.api import Batch
from harness.graphs import GraphedStep, capturable, why_not_graphed
from harness.nn import groups
from harness.nn.cells import set_fast
from harness.testing import replay_checked
from tests.searchkit import REGISTRY, method_parts, random_batches


class ReplayByRerun(GraphedStep):
    """GraphedStep with the CUDA capture swapped for 'run the recorded function again on replay'.
    Like a real capture, capturing runs nothing; every replay reads the static input buffers."""

    def _capture(self, fn, device):
        def replay():  # what a capture records: the step in its captured form (harness.nn.groups.capturing)
            with groups.as_captured():
                return fn()

        return replay


def test_capturable_is_declared_per_class_not_inherited():
    net, sampler, cell, opt = method_parts("darts", "s2")
    assert capturable(sampler) and capturable(cell) and capturable(opt)

    class Custom(type(opt)):  # changes nothing yet, but has not said so
        pass

    assert not capturable(Custom.__new__(Custom))


@pytest.mark.parametrize("method", ["darts", "darts-2nd", "single-darts", "darts-pt", "darts-pt-fixed-alpha"])
def test_methods_built_from_checked_components_can_be_captured(method):
    net, sampler, cell, opt = method_parts(method, "s2")
    assert why_not_graphed(device=torch.device("cuda"), sampler=sampler, cell_type=cell, optimizer=opt) is None


@pytest.mark.parametrize("method", ["entrannas", "entrannas-dst"])
def test_components_that_decide_on_the_host_are_named(method):
    """EnTranNAS's transit cells derive their ops on the host with cell.transit_on_device=false: the
    cell type says so by name (its samplers are capturable)."""
    net, sampler, cell, opt = method_parts(method, "s2")
    cell.config = dataclasses.replace(cell.config, transit_on_device="false")
    why = why_not_graphed(device=torch.device("cuda"), sampler=sampler, cell_type=cell, optimizer=opt)
    assert why is not None and why.startswith("cell type EngineTransitCell: transit cells derive their ops on "
                                              "the host"), why


def test_an_unchecked_component_is_named():
    net, sampler, cell, opt = method_parts("darts", "s2")

    class Custom(type(sampler)):  # changes nothing yet, but has not said so
        pass

    sampler.__class__ = Custom
    why = why_not_graphed(device=torch.device("cuda"), sampler=sampler, cell_type=cell, optimizer=opt)
    assert why.startswith("sampler Custom does not declare graph_capturable = True"), why


@pytest.mark.parametrize("method", ["gdas", "rome-v1", "rome-v2"])
def test_single_path_methods_are_capturable_on_the_fast_path_only(method):
    """GDAS and ROME choose their ops on the device when the cells are fast (issue 17), on the host when
    they are not: the single-path cell type says which, and the reason names it."""
    net, sampler, cell, opt = method_parts(method, "s2")
    cuda = torch.device("cuda")
    assert why_not_graphed(device=cuda, sampler=sampler, cell_type=cell, optimizer=opt, fast=True) is None
    why = why_not_graphed(device=cuda, sampler=sampler, cell_type=cell, optimizer=opt, fast=False)
    assert why.startswith("cell type SinglePathCell") and "runtime.fast=false" in why


def test_cpu_runs_are_never_captured():
    net, sampler, cell, opt = method_parts("darts", "s2")
    why = why_not_graphed(device=torch.device("cpu"), sampler=sampler, cell_type=cell, optimizer=opt)
    assert "CUDA" in why and "cpu" in why


@pytest.mark.parametrize("method", ["darts", "gdas"])  # every method's trajectory: the replay_checked test below
def test_graphed_step_bookkeeping_and_trajectory(method):
    """Two epochs of 6 steps: per epoch, 3 eager warm-up steps, one capture, 3 replays; the trajectory is
    the plain optimizer's exactly (a replay runs the same computation on copies of the same batches).
    GDAS and ROME on their fast path (ops chosen on the device; ROME's K samples grouped), where the
    sampler's Gumbel draws are part of the replayed step."""
    data = random_batches(6)

    def trajectory(wrap):
        # the plain optimizer in the form a capture takes (GraphedStep's warm-up steps take it too), e.g.
        # ROME's sample-group BatchNorm block by block: otherwise the same math rounded differently
        with contextlib.nullcontext() if wrap else groups.as_captured():
            return _trajectory(wrap)

    def _trajectory(wrap):
        net, sampler, cell, opt = method_parts(method, "s2", epochs=2)
        if method in ("gdas", "rome-v2"):
            assert set_fast(net, True)
            assert why_not_graphed(device=torch.device("cuda"), sampler=sampler, cell_type=cell, optimizer=opt) is None
        torch.manual_seed(11)
        step = ReplayByRerun(opt) if wrap else opt
        losses = []
        for epoch in range(2):
            sampler.set_progress(epoch, 2)
            step.set_progress(epoch, 2)
            for train, val in data:
                stats = step.step(net, train, val)
                losses.append(float(stats.train_loss))
        return losses, [a.detach().clone() for a in sampler.arch_parameters()], step, net

    plain_losses, plain_alpha, _, _ = trajectory(False)
    losses, alpha, step, net = trajectory(True)
    assert losses == plain_losses
    assert all(torch.equal(a, b) for a, b in zip(alpha, plain_alpha))
    assert (step.captures, step.replays, step.eager_steps) == (2, 6, 6)
    # the wrapped optimizer's attributes stay reachable (the loop reads lr, selectors call weight_step)
    assert step.lr == step.inner.lr and step.needs_val_batch == step.inner.needs_val_batch
    assert step.weight_step.__self__ is step.inner


def test_replays_read_the_batch_of_this_step_not_the_captured_one():
    net, sampler, cell, opt = method_parts("darts", "s2")
    step = ReplayByRerun(opt, warmup_steps=1)
    data = random_batches(4)
    step.set_progress(0, 1)
    step.step(net, *data[0])  # warm-up
    step.step(net, *data[1])  # capture + first replay
    static_train, static_val = step._static
    step.step(net, *data[2])
    assert torch.equal(static_train.x, data[2][0].x) and torch.equal(static_val.y, data[2][1].y)
    assert static_train.x.data_ptr() != data[2][0].x.data_ptr()  # copied into the captured buffer


def test_an_odd_shaped_batch_steps_eagerly_and_keeps_the_graph():
    net, sampler, cell, opt = method_parts("darts", "s2")
    step = ReplayByRerun(opt, warmup_steps=1)
    step.set_progress(0, 1)
    full, short = random_batches(3), random_batches(1, size=5, seed=9)
    step.step(net, *full[0])
    step.step(net, *full[1])
    replay = step._replay
    stats = step.step(net, *short[0])
    assert stats.n == 5 and step._replay is replay and step.eager_steps == 2
    step.step(net, *full[2])
    assert (step.captures, step.replays) == (1, 2)


def test_warmup_steps_must_be_positive():
    net, sampler, cell, opt = method_parts("darts", "s2")
    with pytest.raises(ValueError, match="warmup_steps"):
        GraphedStep(opt, warmup_steps=0)


class CaptureFails(GraphedStep):
    """GraphedStep whose capture fails as a CUDA graph capture does on a step that cannot be captured."""

    def _capture(self, fn, device):
        raise RuntimeError("operation not permitted when stream is capturing\nCUDA kernel errors ...")


def test_a_failed_capture_stops_the_run_unless_it_may_fall_back():
    """runtime.cuda_graph=true (no fallback): the run stops, naming the switch. auto (fallback): the failure is
    reported once and recorded, and every step runs uncaptured, each on its own batch: the same losses as
    the optimizer alone (its warm-up steps in the captured form, as GraphedStep runs them)."""
    from harness.errors import HarnessError

    data = random_batches(5)

    def run(wrap):
        net, sampler, cell, opt = method_parts("darts", "s2")
        torch.manual_seed(3)
        step = wrap(opt)
        step.set_progress(0, 1)
        losses = []
        for i, (train, val) in enumerate(data):
            with groups.as_captured() if i < 3 and not isinstance(step, GraphedStep) else contextlib.nullcontext():
                losses.append(float(step.step(net, train, val).train_loss))
        return losses, step

    with pytest.raises(HarnessError, match="failed .operation not permitted when stream is capturing.; run with "
                                           "--set runtime.cuda_graph=false"):
        run(CaptureFails)
    said = []
    losses, step = run(lambda opt: CaptureFails(opt, fallback=said.append))
    plain, _ = run(lambda opt: opt)
    assert losses == plain
    assert len(said) == 1 and "(operation not permitted when stream is capturing); the search goes on uncaptured" \
        in said[0]
    assert step.failed.startswith("capturing the search step of FirstOrderBilevel in a CUDA graph failed")
    assert (step.captures, step.replays, step.eager_steps) == (0, 0, 5)


def test_after_a_failed_capture_rome_goes_on_through_the_chosen_op_pass():
    """ROME's group_ops=auto on CUDA takes the all-op pass (captured: the slots) where the step is captured; a
    capture that fails (runtime.cuda_graph=auto falls back) tells the optimizer too, and the uncaptured steps after
    it run the chosen-op pass, the faster one there. (The network is on this CPU, told it is on CUDA.)"""
    from harness.nn.cells import SinglePathBody

    net, _, _, opt = method_parts("rome-v2", "s2", sets=[("optimizer", "samples", "2")])
    set_fast(net, True)
    opt._device_type, opt._slots_ready = "cuda", True
    bodies = [b for b in net.modules() if isinstance(b, SinglePathBody)]
    said = []
    step = CaptureFails(opt, fallback=said.append)
    step.set_progress(0, 1)
    for i, (train, val) in enumerate(random_batches(5)):
        assert torch.isfinite(step.step(net, train, val).train_loss)
        if i < 3:  # the warm-up steps: the all-op pass, grouped
            assert opt.group_ops == "all" and not any(b.route_samples for b in bodies)
    assert len(said) == 1 and step.failed is not None
    assert opt.expect_capture is False and opt.group_ops == "chosen" and opt.grouped(net)
    assert bodies and all(b.route_samples for b in bodies)


def test_a_warm_up_that_fails_in_the_captured_form_falls_back_and_leaves_the_slots(interpret, monkeypatch):
    """GDAS with cell.slots: a warm-up step whose captured form fails (here its depthwise kernels, after the
    slots bound the BatchNorm buffers) is reported, the cells leave the slots (their BatchNorm buffers their
    own again), and the search goes on uncaptured through the other forms."""
    from harness.nn import dwconv
    from harness.nn.cells import SinglePathBody

    net, sampler, cell, opt = method_parts("gdas", "darts", channels=2, layers=1,
                                           sets=[("cell", "slots", "true"), ("cell", "fused", "never")])
    set_fast(net, True)  # (cell.fused=never: uncaptured, the chosen op per edge, as on CUDA by default)
    real = dwconv.depthwise_conv

    def failing(*args, geo=None, **kwargs):
        if geo is not None:
            raise RuntimeError("triton: out of resources")
        return real(*args, geo=geo, **kwargs)

    monkeypatch.setattr(dwconv, "depthwise_conv", failing)
    said = []
    step = ReplayByRerun(opt, fallback=said.append)
    step.set_progress(0, 1)
    for train, val in random_batches(3, size=2, resolution=8):
        assert torch.isfinite(step.step(net, train, val).train_loss)
    assert len(said) == 1 and "warm-up in the form a CUDA graph captures failed (RuntimeError: triton: out of " \
                              "resources)" in said[0]
    bodies = [b for b in net.modules() if isinstance(b, SinglePathBody)]
    assert bodies and all(b._slots is None and not b.slots for b in bodies)
    assert all(t._base is None for b in bodies for m in b.ops.modules() for t in m._buffers.values() if t is not None)
    assert (step.captures, step.replays, step.eager_steps) == (0, 0, 3)


def test_a_selector_trains_uncaptured_after_a_captured_search(monkeypatch):
    """DARTS-PT fine-tunes the supernet between its decisions through the run's optimizer. A CUDA graph of the
    search step replays the search's kernels, blind to what the selector changes between steps (the projected
    weights, the tuning lr), so the selector is handed the optimizer under the graph: the search's steps are
    replayed, the selection's all run uncaptured, on the same optimizer state."""
    from harness.search import run_search
    from harness_darts_pt.components import PerturbationSelector, PTConfig

    net, sampler, cell, opt = method_parts("darts-pt", "s2", steps_per_epoch=5, epochs=1)
    step = ReplayByRerun(opt)
    batches = random_batches(5)
    train = [(t.x, t.y) for t, _ in batches]
    val = [(v.x, v.y) for _, v in batches]
    seen, counts = [], {}
    selector = PerturbationSelector(PTConfig(tune_epochs_per_decision=1, tune_steps=1, max_val_batches=1))
    real_step = type(opt).step

    def counted(self, *args):
        seen.append(self)
        return real_step(self, *args)

    def after_search(epoch, stats):
        counts.update(replays=step.replays, captures=step.captures, steps=len(seen))

    monkeypatch.setattr(type(opt), "step", counted)
    run_search(net=net, sampler=sampler, optimizer=step, selector=selector, space=REGISTRY.space("s2"),
               train_loader=train, val_loader=val, epochs=1, seed=0, on_epoch=after_search)
    assert (counts["captures"], counts["replays"]) == (1, 2)  # 3 warm-up steps, then a capture and 2 replays
    assert (step.captures, step.replays) == (1, 2)  # none in the selection
    assert selector.tuned_epochs == 17 and len(seen) == counts["steps"] + 17  # its 17 one-step tuning epochs
    assert all(s is opt for s in seen)


def test_a_checkpoint_of_a_captured_search_holds_the_optimizer_under_the_graph():
    """A search checkpoint keeps the optimizer's state (weight momentum, the architecture Adam's moments and
    step counts, its own settings). Under a CUDA graph the run's optimizer is the graph's wrapper, which holds
    none of it: the checkpoint reads and restores the optimizer under it (it kept only the wrapper's counters,
    so a resumed GPU run restarted its momentum and Adam from zero)."""
    from harness.search import component_state, load_component_state

    net, _, _, opt = method_parts("darts", "s2", steps_per_epoch=5)
    step = ReplayByRerun(opt)
    for train, val in random_batches(5):  # 3 warm-up steps, a capture and 2 replays
        step.step(net, train, val)
    assert (step.captures, step.replays) == (1, 2)
    state = component_state(step)
    assert {"w_opt", "a_opt", "arch_enabled"} <= set(state) and "replays" not in state

    _, _, _, opt2 = method_parts("darts", "s2", steps_per_epoch=5)
    load_component_state(ReplayByRerun(opt2), state)
    for name in ("w_opt", "a_opt"):
        saved, loaded = getattr(opt, name).state_dict()["state"], getattr(opt2, name).state_dict()["state"]
        assert saved.keys() == loaded.keys() and len(saved) > 0
        for i in saved:
            assert saved[i].keys() == loaded[i].keys()
            assert all(torch.equal(torch.as_tensor(saved[i][k]), torch.as_tensor(loaded[i][k])) for k in saved[i])


def test_a_captured_search_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(tmp_path):
    """Two epochs of DARTS under the capture substitute, checkpointed after each; a fresh supernet and graph
    wrapper resumed from the first epoch's checkpoint end with the uninterrupted run's weights and
    architecture (the graph is captured anew after the resume; what it replays is the restored state)."""
    from harness.checkpoint import load_checkpoint, save_checkpoint
    from harness.search import run_search

    data = random_batches(5)
    train, val = [(t.x, t.y) for t, _ in data], [(v.x, v.y) for _, v in data]
    selector = REGISTRY.component("selector", "argmax")

    def search(resume=None):
        net, sampler, _, opt = method_parts("darts", "s2", steps_per_epoch=5, epochs=2)
        step = ReplayByRerun(opt)
        saved = []

        def keep(state):
            saved.append(save_checkpoint(tmp_path / f"ckpt-{len(saved)}.pt", state))

        torch.manual_seed(3)
        run_search(net=net, sampler=sampler, optimizer=step, selector=selector.factory(selector.config()),
                   space=REGISTRY.space("s2"), train_loader=train, val_loader=val, epochs=2, seed=0,
                   resume=resume, checkpoint=keep)
        return net, step, saved

    net, step, saved = search()
    assert step.captures == 2  # one a epoch (set_progress drops the graph)
    first = load_checkpoint(saved[0])
    assert first["epoch"] == 0 and "w_opt" in first["optimizer"]
    resumed, again, _ = search(first)
    assert again.captures == 1 and again.replays > 0
    for (name, a), (_, b) in zip(net.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_search_step_compares_a_graph_and_keeps_eager_and_fast_when_its_capture_fails(monkeypatch):
    """benchmarks/search_step.py --compare (each `gpu_session.sh all` step item) with the capture substitutes on
    a CPU: a graph that captures and replays is a third mode beside eager and fast; a capture that fails is
    recorded as ``graph_failed`` and the item keeps its eager and fast figures (before, the error ended the
    item and both were lost, as ROME's two items were on the second H200 run)."""
    import importlib.util
    from pathlib import Path

    import harness.graphs as graphs

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "search_step.py"
    spec = importlib.util.spec_from_file_location("search_step", path)
    search_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(search_step)
    monkeypatch.setattr(graphs, "why_not_graphed", lambda **kw: None)  # as on CUDA for a capturable method
    argv = ["--method", "darts", "--space", "nb201", "--batch", "4", "--channels", "4", "--layers", "3",
            "--resolution", "8", "--steps", "2", "--warmup", "0", "--compare"]
    monkeypatch.setattr(graphs, "GraphedStep", ReplayByRerun)
    ok = search_step.main(argv)
    assert list(ok["modes"]) == ["eager", "fast", "graph"] and "graph_failed" not in ok
    graph = ok["modes"]["graph"]
    assert graph["graph_captures"] == 1 and graph["graph_replays"] >= 2 and graph["fast_cells"] == 9  # 3 x 3 cells
    # the rerun replay computes the fast step's arithmetic: the same departure from eager, step by step
    assert ok["loss_rel_diff_per_step_graph"] == ok["loss_rel_diff_per_step"]
    monkeypatch.setattr(graphs, "GraphedStep", CaptureFails)
    failed = search_step.main(argv)
    assert list(failed["modes"]) == ["eager", "fast"] and "speedup_graph" not in failed
    assert failed["graph_failed"].startswith("capturing the search step of FirstOrderBilevel in a CUDA graph failed")
    for mode in ("eager", "fast"):
        assert failed["modes"][mode]["ms_per_step_median"] > 0
    assert failed["loss_max_rel_diff"] == ok["loss_max_rel_diff"]  # the same trajectories as with the graph


def _step_recipes():
    """One method per search step: methods whose sampler, optimizer and cell type (and their settings) are
    another's take the same step (DARTS-PT's search is DARTS's: they differ in the selector)."""
    seen, out = set(), []
    for name in sorted(REGISTRY.methods):
        m = REGISTRY.methods[name]
        key = (m.sampler, m.optimizer, m.cell, repr({k: v for k, v in (m.defaults or {}).items() if k != "selector"}))
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


@pytest.mark.parametrize("method", _step_recipes())
def test_every_capturable_method_replays_the_operators_and_host_values_of_its_capture(method):
    """Every method is captured on CUDA (runtime.cuda_graph=auto: fast cells, capturable components; since
    2026-12-05 also PC-DARTS, DrNAS, SNAS and SDARTS). An epoch of 3 steps under harness.testing.replay_checked
    (a warm-up step, a capture, two replays): the same operators and host values at every replay, no host read.
    DrNAS two epochs: its second stage, widened and pruned, begins with the second. (That a rerun replay
    follows the plain optimizer's trajectory, static batch buffers and recapture after set_progress included:
    test_graphed_step_bookkeeping_and_trajectory.)"""
    space = "s2" if REGISTRY.methods[method].spaces is None or "s2" in REGISTRY.methods[method].spaces else \
        sorted(REGISTRY.methods[method].spaces)[0]
    sets = [("cell", "k", 2), ("optimizer", "k_schedule", "2,1")] if method == "drnas" else []  # K | 4 channels
    epochs = 2 if method == "drnas" else 1
    net, sampler, cell, opt = method_parts(method, space, epochs=epochs, steps_per_epoch=3, sets=sets)
    set_fast(net, True)
    assert why_not_graphed(device=torch.device("cuda"), sampler=sampler, cell_type=cell, optimizer=opt) is None
    step = replay_checked(opt)
    for epoch in range(epochs):
        sampler.set_progress(epoch, epochs)
        step.set_progress(epoch, epochs)
        for train, val in random_batches(3):
            step.step(net, train, val)
    assert (step.captures, step.replays) == (epochs, 2 * epochs)
    if method == "drnas":
        assert {m.k for m in net.modules() if hasattr(m, "set_partial")} == {1}


def test_the_replay_check_catches_a_host_value_that_changes_and_a_host_read():
    """harness.testing.check_capturable, as a plugin author calls it, on two optimizers that declare
    graph_capturable wrongly: one passes a per-step host value into an operator (frozen into a real graph at
    its capture), one reads a device value on the host. And on one whose component is not declared."""
    from harness.blocks import BilevelConfig, FirstOrderBilevel
    from harness.testing import ConformanceError, check_capturable

    class Counting(FirstOrderBilevel):
        graph_capturable = True  # wrongly: the scale below changes every step on the host

        def weight_step(self, net, train):
            self.n = getattr(self, "n", 0) + 1
            return super().weight_step(net, Batch(train.x * (1 + self.n / 1000), train.y))

    class Reading(FirstOrderBilevel):
        graph_capturable = True  # wrongly: .item() is a sync

        def weight_step(self, net, train):
            scale = float(train.x.abs().max().item())
            return super().weight_step(net, Batch(train.x / scale, train.y))

    class Undeclared(FirstOrderBilevel):
        pass

    assert check_capturable(optimizer=(FirstOrderBilevel, BilevelConfig())).replays == 4  # 2 epochs x 2
    for cls, said in ((Counting, r"the captured step of sampler SoftmaxSampler, cell type MixedCell, optimizer "
                                 r"Counting dispatches other operators than at its capture \(\d+ against \d+; "
                                 r"operator \d+: aten.mul.Tensor\(\('tensor', \(6, 1, 8, 8\), torch.float32\), "
                                 r"'1.003'\), captured as aten.mul.Tensor\(.*'1.002'\)\)"),
                      (Reading, r"optimizer Reading reads a device value on the host \(aten._local_scalar_dense"),
                      (Undeclared, r"would not be captured on CUDA: optimizer Undeclared does not declare "
                                   r"graph_capturable = True")):
        with pytest.raises(ConformanceError, match=said):
            check_capturable(optimizer=(cls, BilevelConfig()))


def test_drnas_with_its_kl_regulariser_replays_without_host_reads():
    """DrNAS's reg=kl (the KL to a uniform Dirichlet, torch.distributions): no argument check on the host."""
    sets = [("cell", "k", 2), ("optimizer", "k_schedule", "2,1"), ("sampler", "reg", "kl")]
    net, sampler, cell, opt = method_parts("drnas", "s2", sets=sets)
    assert sampler.config.reg == "kl"
    set_fast(net, True)
    step = replay_checked(opt)
    step.set_progress(0, 1)
    for train, val in random_batches(3):
        step.step(net, train, val)
    assert step.replays == 2
