"""Hook specifications: the whole contract between the harness and its plugins.

A plugin is a module (or object) with functions named like these specs and marked with
``harness.hookimpl``; it is found through the ``harness`` entry-point group. Registration hooks are
called once, when the plugin manager is built, with a ``register`` callable; lifecycle hooks fire
during every run. Per-step behaviour is not a hook: it lives on the components' own methods
(``BilevelOptimizer.step``, ``Sampler.forward``, ...), so the search hot path never goes through
pluggy.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def harness_register_samplers(register):
    """Register architecture samplers.

    A sampler owns the architecture parameters (alpha, beta, ...) of a supernet and turns them into
    the weights of one forward pass (``harness.api.ArchWeights``): a softmax (DARTS), a Gumbel hard
    one-hot (GDAS), a sigmoid (Single-DARTS), ...

    :param register: call ``register(name, factory, config, doc="", presets=None)``. ``config`` is a frozen
        dataclass whose defaults are the paper's settings; ``factory(config, space=)``
        returns an ``nn.Module`` implementing ``harness.api.Sampler``. ``presets`` (every kind):
        what a reduced preset changes in the config, e.g. ``{"smoke": {"tune_steps": 1}}``, applied
        wherever the component runs under that preset, its own method's settings on top.

    A name already registered by another plugin is an error naming both plugins.
    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_optimizers(register):
    """Register bilevel optimizers.

    A bilevel optimizer takes one search step given a train batch and (if ``needs_val_batch``) a
    validation batch; it owns the weight and architecture optimizers and the weight learning-rate
    schedule (first-order alternating, second-order unrolled, single-level, K-sample accumulation...).

    :param register: call ``register(name, factory, config, doc="", presets=None)``; ``factory(config, net=,
        steps_per_epoch=, epochs=)`` returns a ``harness.api.BilevelOptimizer``.

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_selectors(register):
    """Register architecture selectors: supernet -> genotype.

    :param register: call ``register(name, factory, config, doc="", presets=None)``; ``factory(config)`` returns a
        ``harness.api.Selector`` whose ``select(net, ctx)`` returns a genotype of ``ctx.space``
        (magnitude argmax with the space's rule, perturbation-based selection, ...).

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_cell_types(register):
    """Register cell types: how a search cell computes from the sampler's weights.

    :param register: call ``register(name, factory, config, doc="", presets=None)``; ``factory(config)`` returns a
        ``harness.api.CellType`` whose ``build(spec)`` makes the body of one cell (mixed: every op
        weighted; single-path: only the sampled op runs; ...).

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_spaces(register):
    """Register search spaces.

    :param register: call ``register(space)`` with a ``harness.spaces.SearchSpace``: its name, the
        candidate ops of every edge, how to build the supernet and the evaluation network, the
        default derivation rule and its genotype format.

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_datasets(register):
    """Register datasets (``harness run --dataset NAME``).

    :param register: call ``register(info, loader, doc="")``: ``info`` a ``harness.data.DatasetInfo``
        (name, channels, resolution, classes, normalisation, augmentation defaults); ``loader(data_dir,
        download)`` returns ``(train_x, train_y, test_x, test_y)``: uint8 images N x C x H x W matching
        ``info`` and integer labels in ``[0, num_classes)`` (numpy arrays or tensors). ``data_dir`` is the
        user's ``--data-dir`` (or None: ``$HARNESS_DATA_DIR``, else ``./data``); a missing or corrupt file
        is a ``HarnessError`` naming it. The built-in ones are registered by the ``core`` plugin.

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_benchmarks(register):
    """Register tabular benchmarks that answer "how good is this architecture" without training.

    :param register: call ``register(name, opener, spaces, doc="", datasets=(), default_path=None,
        converter=None)`` (``converter(official, output, trust=False)`` backs ``harness benchmark convert``):
        ``opener(path)`` returns an object with ``datasets`` and ``query(arch, dataset)``; ``spaces``
        names the spaces it covers; ``datasets`` the datasets it answers for (a run on one of them is
        evaluated by a query, so the file must be found); ``default_path()`` where its file is when the
        user names none (or None).
        A benchmark file is untrusted input: the opener must not run code from it (no plain
        ``pickle.load``/``torch.load(weights_only=False)``). Only when the user passes
        ``--trust-benchmark-file`` is it called as ``opener(path, trust=True)``.

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_methods(register):
    """Register methods: named recipes of one component of each kind plus the paper's defaults.

    :param register: call ``register(harness.api.MethodInfo(...))``. The components it names may
        come from any plugin; they are resolved when a run starts, so a method can use another
        plugin's selector.

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_executors(register):
    """Register executors: where the runs of a grid execute (``harness run --executor NAME``).

    :param register: call ``register(name, factory, doc="")``; ``factory(options)`` takes a
        ``harness.executors.ExecutorOptions`` (workers, runs_per_gpu, retries) and returns an object with
        ``run(tasks, begin, settle, *, registry, plan, device, log)``: call ``begin(task)`` when a run
        starts and ``settle(task, record)`` with its finished ``RunRecord``, in the calling process (the
        driver writes the store there; workers never do). See ``harness.executors``.

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_register_trackers(register):
    """Register experiment trackers (``harness run --track NAME``): see ``harness.tracking``.

    :param register: call ``register(name, doc="", available=None)``; ``available()`` returns None where
        the tracker can run here, else why not (its package missing), said before a grid's first run.
        The tracker itself is the plugin's lifecycle hooks (``harness.tracking.LifecycleTracker`` implements
        them for a subclass), acting for the runs whose ``runtime.track`` names it.

    Fires once, when the plugin manager is built.
    """


@hookspec
def harness_run_start(spec, record):
    """A run is about to search.

    :param spec: the resolved ``harness.api.RunSpec``.
    :param record: the ``harness.api.RunRecord`` just stored with status "running"; a hook may add
        entries to ``record.costs`` or ``record.search``.

    Fires after the store row exists and before the supernet is built. Return value ignored.
    """


@hookspec
def harness_epoch_end(spec, epoch, stats):
    """A search epoch ended.

    :param spec: the run's ``RunSpec``.
    :param epoch: 0-based epoch index.
    :param stats: dict of floats (``train_loss``, ``val_loss`` (nan for a single-level optimizer, which
        takes no validation batch), ``train_acc``, ``lr``, ``seconds``), ``probabilities`` (cell kind ->
        (edges, ops) nested lists of the sampler's current probabilities, 4 decimals), ``genotype`` (the
        string the run's selector would derive now if its rule is cheap, else the space's rule:
        ``genotype_rule`` says which) and the space's counts of it (``param_free_normal``, ...).

    Fires once per search epoch, after the epoch's last step; the loop synchronises with the device
    only here. Return value ignored.
    """


@hookspec
def harness_genotype_derived(spec, genotype, record):
    """The selector derived the run's architecture (after the search, before its evaluation).

    :param spec: the run's ``RunSpec``.
    :param genotype: the genotype (its ``to_string()`` is what the record keeps).
    :param record: the ``RunRecord`` with ``genotype`` and ``search`` filled in.

    Fires once per run that reaches its evaluation (also on a resume from a retrain checkpoint).
    Return value ignored.
    """


@hookspec
def harness_retrain_epoch_end(spec, epoch, stats):
    """A retraining epoch of the derived network ended (runs evaluated by retraining only).

    :param spec: the run's ``RunSpec``.
    :param epoch: 0-based epoch index.
    :param stats: dict: ``train_loss``, ``train_acc``, ``lr``, and ``test_acc`` on the epochs the test
        set was evaluated (``runtime.test_every``, and the last).

    Fires once per retrain epoch; the loop synchronises with the device only here. Return value ignored.
    """


@hookspec
def harness_run_end(spec, record):
    """A run finished, completed or failed.

    :param spec: the run's ``RunSpec``.
    :param record: the final ``RunRecord`` (``status``, ``genotype``, ``metrics``, ``costs``,
        ``error``), before it is written; hooks may add entries to ``costs``.

    Fires once per run, also when the run failed. Return value ignored.
    """
