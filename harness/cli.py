"""The ``harness`` command line. Torch and the plugins are imported inside commands so that
``--help`` is instant. Progress goes to stderr, results to stdout; a user's mistake is one line on
stderr and exit status 2."""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex
import sys
from pathlib import Path

import click

from harness import __version__
from harness.builtin import DEFAULT_DATASET, DEFAULT_SPACE
from harness.errors import HarnessError

SPACE_RANGES = ("s1", "s2", "s3", "s4")


class ListType(click.ParamType):
    """A comma-separated list; ``s1-s4`` expands to s1,s2,s3,s4."""

    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        items = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            a, dash, b = part.partition("-")
            if dash and a in SPACE_RANGES and b in SPACE_RANGES:
                i, j = SPACE_RANGES.index(a), SPACE_RANGES.index(b)
                if i > j:
                    self.fail(f"empty range {part!r}", param, ctx)
                items.extend(SPACE_RANGES[i: j + 1])
            else:
                items.append(part)
        if not items:
            self.fail(f"{value!r} names nothing", param, ctx)
        return list(dict.fromkeys(items))


class SeedsType(click.ParamType):
    """``0-3`` or ``0,2,5`` (or a mix: ``0-2,7``)."""

    name = "seeds"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        seeds: list[int] = []
        try:
            for part in (p.strip() for p in str(value).split(",") if p.strip()):
                a, dash, b = part.partition("-")
                if dash:
                    lo, hi = int(a), int(b)
                    if lo > hi:
                        self.fail(f"empty seed range {part!r}", param, ctx)
                    seeds.extend(range(lo, hi + 1))
                else:
                    seeds.append(int(part))
        except ValueError:
            self.fail(f"{value!r} is not a seed list like 0-3 or 0,2,5", param, ctx)
        if not seeds:
            self.fail(f"{value!r} names no seed", param, ctx)
        return list(dict.fromkeys(seeds))


def _command_line() -> str:
    return "harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def handle_errors(fn):
    """Turn a HarnessError into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def trust_option(fn):
    return click.option(
        "--trust-benchmark-file", is_flag=True,
        help="Unpickle an official NAS-Bench-201 .pth in full (faster; runs whatever the file asks for, so only "
             "for a file you trust). Without it the file is read weights-only: nothing in it can run.")(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def emit_rows(rows: list[dict], as_json: bool, lines) -> None:
    """A listing command's output: ``rows`` as JSON, or ``lines(row)`` (the text lines) for each row."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        for line in lines(row):
            click.echo(line)


def store_option(fn):
    from harness.store import DEFAULT_STORE

    return click.option("--store", type=click.Path(dir_okay=False), default=str(DEFAULT_STORE),
                        show_default=True, help="SQLite results store.")(fn)


@click.group()
@click.version_option(__version__, prog_name="nas-harness")
def cli():
    """Run any differentiable NAS method on any search space and publish leaderboards."""


# ----------------------------------------------------------------------------------------------


@cli.command()
@click.option("--plugin", "methods", type=ListType(), required=True,
              help="Method(s) as `harness methods` lists them, or a plugin's name for all its methods; "
                   "comma-separated")
@click.option("--space", "spaces", type=ListType(), default=DEFAULT_SPACE, show_default=True,
              help="Space(s), as `harness spaces` lists them; a range like s1-s4.")
@click.option("--dataset", "datasets", type=ListType(), default=DEFAULT_DATASET, show_default=True,
              help="Dataset(s), as `harness datasets` lists them.")
@click.option("--seeds", type=SeedsType(), default="0", show_default=True, help="Seeds: 0-3 or 0,2,5.")
@click.option("--preset", default="smoke", show_default=True, help="Budget: smoke, quick or paper.")
@click.option("--set", "sets", multiple=True, metavar="COMPONENT.KEY=VALUE",
              help="Override a setting, e.g. search.epochs=3, sampler.tau_max=5, runtime.fast=false.")
@click.option("--sampler", help="Swap the method's sampler for another registered one.")
@click.option("--optimizer", help="Swap the method's bilevel optimizer.")
@click.option("--selector", help="Swap the method's selector, e.g. argmax.")
@click.option("--cell", help="Swap the method's cell type.")
@store_option
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where datasets are, in torchvision's layout (default: $HARNESS_DATA_DIR, else ./data). A "
                   "missing dataset that can be downloaded is downloaded there on first use (harness datasets "
                   "lists them; a failed download leaves no empty folder).")
@click.option("--benchmark", "benchmark_path", type=click.Path(dir_okay=False),
              help="The file of the benchmark that evaluates a space by query (default: the benchmark's own; "
                   "`harness benchmark --help`).")
@trust_option
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where to run.")
@click.option("--force", is_flag=True, help="Run again even if an identical run completed (both are kept).")
@click.option("--executor", "executor_name", default="local", show_default=True,
              help="Where the runs execute (harness plugins lists those installed).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Runs at once, each in its own process (CUDA: one GPU per worker, round-robin).")
@click.option("--runs-per-gpu", type=int, default=1, show_default=True,
              help="With --workers on CUDA: concurrent runs packed on each GPU.")
@click.option("--retries", type=int, default=1, show_default=True,
              help="How often a run whose worker died is started again (--workers, ray).")
@click.option("--ray-address", help="With --executor ray: the cluster to join (default: start a local one).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False),
              help="Where runs keep their epoch checkpoints (every worker must reach it). Default: "
                   "checkpoints/ beside the store.")
@click.option("--restart", is_flag=True, help="Start interrupted runs afresh instead of from their checkpoints.")
@click.option("--keep-checkpoints", is_flag=True, help="Keep a completed run's last checkpoint.")
@click.option("--progress", "progress_mode", default="auto", show_default=True,
              help="auto (live table when stderr is a terminal, else plain), live, plain (one line per "
                   "epoch and event) or off.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (--progress off).")
@click.option("--track", "trackers", type=ListType(),
              help="Log every run to experiment trackers too, e.g. tensorboard,mlflow (harness plugins lists those "
                   "installed; extras nas-harness[tensorboard], [mlflow]).")
@click.option("--track-dir", type=click.Path(file_okay=False),
              help="Where the trackers write (default: tracking/ beside the store).")
@click.option("--dry-run", is_flag=True,
              help="Print each run's fully resolved configuration (JSON lines) and run nothing.")
@handle_errors
def run(methods, spaces, datasets, seeds, preset, sets, sampler, optimizer, selector, cell, store, data_dir,
        benchmark_path, trust_benchmark_file, device, force, executor_name, workers, runs_per_gpu, retries,
        ray_address, checkpoint_dir, restart, keep_checkpoints, progress_mode, quiet, trackers, track_dir, dry_run):
    """Search, derive, evaluate and record every (method, space, dataset, seed)."""
    from harness.config import parse_sets
    from harness.plugins import load_registry
    from harness.progress import GridView, choose_mode
    from harness.runner import Checkpoints, execute, plan, resolve_device, resolve_specs
    from harness.store import ResultStore

    mode = choose_mode(progress_mode)  # checked even under --quiet: a bad value is said, not ignored
    mode = "off" if quiet else mode
    registry = load_registry()
    if trackers:  # checked before anything runs: known names, packages installed
        for name in trackers:
            registry.tracker(name)
        sets = (*sets, f"runtime.track={','.join(trackers)}",
                f"runtime.track_dir={Path(track_dir or Path(store).parent / 'tracking').absolute()}")
    grid = dict(methods=methods, spaces=spaces, datasets=datasets, seeds=seeds, preset=preset,
                swaps={"sampler": sampler, "optimizer": optimizer, "selector": selector, "cell": cell},
                sets=parse_sets(sets))
    def say_skipped(skipped):
        if skipped:
            click.echo(f"skipped {len(skipped)} (method, space) pair(s) the method does not apply to: "
                       + "; ".join(skipped), err=True)

    if dry_run:
        skipped = []
        specs = resolve_specs(registry, **grid, skipped=skipped)
        say_skipped(skipped)
        for spec in specs:
            ops = registry.space(spec.space, spec.budget.search.op_set).ops_summary()
            click.echo(json.dumps({**spec.resolved(), "runtime": dataclasses.asdict(spec.budget.runtime),
                                   "search_ops": ops}, sort_keys=True))
        return
    from harness.executors import ExecutorOptions

    executor = registry.executor(executor_name).factory(
        ExecutorOptions(workers=workers, runs_per_gpu=runs_per_gpu, retries=retries, address=ray_address))
    dev = resolve_device(device)
    the_plan = plan(registry, **grid, data_dir=data_dir, benchmark_path=benchmark_path,
                    trust_benchmark=trust_benchmark_file)
    say_skipped(the_plan.skipped)
    results = ResultStore(store)
    log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    try:
        records = execute(registry, the_plan, results, dev, force=force, log=log, command=_command_line(),
                          executor=executor, sources={"data_dir": data_dir, "benchmark_path": benchmark_path,
                                                      "trust_benchmark": trust_benchmark_file},
                          checkpoints=Checkpoints(str(Path(checkpoint_dir or Path(store).parent / "checkpoints")
                                                      .absolute()), restart=restart, keep=keep_checkpoints),
                          view=GridView(mode, log=log if mode == "plain" else None))
    finally:
        results.close()
    _say_records(records, store)
    if any(r.status == "failed" for r in records):  # ("running": being run by another live process)
        sys.exit(1)
    if any(r.status == "interrupted" for r in records):  # 128 + the signal, as a shell reports it
        sys.exit(143 if any("SIGTERM" in (r.error or "") for r in records) else 130)


# ----------------------------------------------------------------------------------------------


@cli.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@handle_errors
def status(store, as_json):
    """Where a store's runs stand: counts by status; each running run's phase, epoch, step, loss and
    throughput (as of its last heartbeat), process, host and heartbeat age (stale ones marked: their
    process is gone, and the next `harness run` of the grid starts them again); each failed run with the
    first line of its error."""
    from harness.progress import describe
    from harness.runner import stale_reason
    from harness.store import STATUSES, ResultStore

    if not Path(store).exists():
        raise HarnessError(f"no results store at {store!r}; run `harness run ...` first or pass --store PATH")
    with ResultStore(store) as results:
        records = results.records(None)
        running = results.running()

    def what(r):
        return f"{r.method} on {r.space}/{r.dataset} seed {r.seed} ({r.preset})"

    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    active = []
    for rec, lease in running:
        why = stale_reason(rec, lease)
        active.append({"id": rec.id, "run": what(rec), "host": lease.host if lease else None,
                       "pid": lease.pid if lease else None,
                       "heartbeat_age_s": round(lease.age(), 1) if lease else None, "stale": why,
                       "progress": lease.progress if lease else None})
    failed = [{"id": r.id, "run": what(r), "error": (r.error or "").strip().splitlines()[0] if r.error else ""}
              for r in records if r.status == "failed"]
    if as_json:
        click.echo(json.dumps({"store": str(store), "counts": counts, "running": active, "failed": failed}))
        return
    n_stale = sum(a["stale"] is not None for a in active)
    click.echo(f"results store {store}: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES)
               + (f" ({n_stale} stale)" if n_stale else ""))
    if active:
        click.echo("running:")
        for a in active:
            owner = (f"process {a['pid']} on {a['host']}, heartbeat {a['heartbeat_age_s']:.0f} s ago"
                     if a["pid"] is not None else "no lease")
            where = "" if a["stale"] else f"  {describe(a['progress'])};"
            click.echo(f"  run {a['id']}  {a['run']}{where}  {owner}" + (f"  STALE: {a['stale']}" if a["stale"] else ""))
    if failed:
        click.echo("failed:")
        for f in failed:
            click.echo(f"  run {f['id']}  {f['run']}  {f['error']}")


@cli.command()
@store_option
@click.option("--export", "fmt", default="markdown", show_default=True,
              help="markdown, csv, latex, html or json.")
@click.option("--fmt", "tablefmt", help="tabulate table format for markdown/latex/html (e.g. pipe, grid).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--metric", default="test_accuracy", show_default=True, help="Metric to aggregate.")
@click.option("--preset", default=None, help="Only runs of this preset (default: the one present).")
@click.option("--best-of-n", "best", is_flag=True,
              help="Report the best seed (the papers' convention) instead of mean ± std.")
@click.option("--with-paper", is_flag=True,
              help="Add each method's published number (its recipe's citation), our delta, and a mark where ours "
                   "is outside two standard deviations.")
@handle_errors
def leaderboard(store, fmt, tablefmt, output, metric, preset, best, with_paper):
    """Aggregate the store into a leaderboard: mean ± std over seeds per method and (space, dataset)."""
    from harness.leaderboard import EXPORT_FORMATS, export

    if fmt not in EXPORT_FORMATS:
        raise HarnessError(f"unknown export format {fmt!r}; valid choices: {', '.join(EXPORT_FORMATS)}")
    df, header = _board(_read_records(store, "completed"), metric, preset, best, with_paper)
    text = export(df, fmt, header=header, tablefmt=tablefmt)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


def _read_records(store, status: str | None = "completed"):
    """The store's records (``status`` None: every row), or a one-line error where there is no store."""
    from harness.store import ResultStore

    if not Path(store).exists():
        raise HarnessError(f"no results store at {store!r}; run `harness run ...` first or pass --store PATH")
    results = ResultStore(store)
    try:
        return results.records(status)
    finally:
        results.close()


def _board(records, metric="test_accuracy", preset=None, best=False, with_paper=False):
    """The leaderboard table of ``records`` (``harness leaderboard``, ``plot leaderboard``, ``report``) and the
    header its exports print: the commands, versions, devices and protocol behind it."""
    from datetime import datetime, timezone

    from harness.leaderboard import leaderboard as build

    kwargs = {"metric": metric, "protocol": "best" if best else "mean-std"}
    if preset is not None:
        kwargs["preset"] = preset
    df = build(records, **kwargs)
    if with_paper:
        from harness.leaderboard import with_paper as attach
        from harness.plugins import load_registry

        df = attach(df, load_registry().methods)
    plugins: dict[str, str] = {}
    for r in records:
        plugins.update(r.plugins)
    header = {
        "command": _command_line(),
        "run commands": " ; ".join(sorted({r.command for r in records if r.command})),
        "harness": __version__,
        "plugins": ", ".join(f"{k} {v}" for k, v in sorted(plugins.items())),
        "torch": ", ".join(sorted({r.torch_version for r in records})),
        "devices": ", ".join(sorted({r.device for r in records})),
        "metric": metric,
        "protocol": "best of N seeds (papers' convention)" if best else "mean ± std over search seeds",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    return df, header


def _say_records(records, store) -> None:
    """The end of ``harness run``: a table of the grid's runs on stdout (header, one row per run, the genotype
    last), then on stderr where they are and what to run next."""
    header = ("id", "status", "method", "space", "dataset", "seed", "test acc", "genotype")
    rows = []
    for r in records:
        acc = r.metrics.get("test_accuracy")
        rows.append((str(r.id), r.status, r.method, r.space, r.dataset, str(r.seed),
                     f"{acc:.2f}" if isinstance(acc, (int, float)) else "-", r.genotype or (f"error: {r.error}" if r.error else "")))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    store = shlex.quote(str(Path(store).absolute()))
    click.echo(f"{len(records)} run{'s' if len(records) != 1 else ''} recorded in {store}; next: "
               f"harness leaderboard --store {store}", err=True)


# ----------------------------------------------------------------------------------------------


@cli.command()
@json_option
@click.option("--check", is_flag=True,
              help="Run the conformance checks (harness.testing) on every space and component installed; "
                   "exit 1 if one fails.")
@handle_errors
def plugins(as_json, check):
    """List installed plugins: distribution, version, and what each registers (and what was refused)."""
    from harness.plugins import load_registry

    registry = load_registry()
    if check:
        sys.exit(_check_plugins(registry))
    rows = [{"name": p.name, "distribution": p.distribution, "version": p.version, "registers": p.registers,
             "refused": registry.refusals_of(p.name)}
            for p in registry.plugins.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']}  ({row['distribution']} {row['version']})")
        for kind, names in sorted(row["registers"].items()):
            click.echo(f"    {kind + ':':11s} {', '.join(names)}")
    for line in sorted(registry.refused.values()):
        click.echo(f"refused: {line}", err=True)


def _check_plugins(registry) -> int:
    """``harness plugins --check``: every space, then every component on the toy configuration."""
    from harness.testing import ConformanceError, check_component, check_space

    failed = 0
    for line in sorted(registry.refused.values()):
        click.echo(f"REFUSED  {line}")
        failed += 1
    for name, space in registry.spaces.items():
        plugin = registry.owner("space", name)
        try:
            check_space(space, plugin=plugin)
            click.echo(f"ok       space {name} ({plugin})")
        except ConformanceError as exc:
            click.echo(f"FAILED   {exc}")
            failed += 1
    for kind, table in registry.components.items():
        for name, info in table.items():
            try:
                check_component(info)
                click.echo(f"ok       {kind} {name} ({info.plugin})")
            except ConformanceError as exc:
                click.echo(f"FAILED   {exc}")
                failed += 1
    click.echo(f"{failed} failed" if failed else "every space and component conforms")
    return 1 if failed else 0


@cli.command()
@json_option
@handle_errors
def datasets(as_json):
    """List datasets: image shape, classes, the plugin that registers each, and what it is."""
    from harness.plugins import load_registry

    registry = load_registry()
    rows = [{"name": name, "channels": e.info.channels, "resolution": e.info.resolution,
             "classes": e.info.num_classes, "plugin": e.plugin, "description": e.doc}
            for name, e in registry.datasets.items()]
    emit_rows(rows, as_json, lambda r: (
        f"{r['name']}: {r['channels']}x{r['resolution']}x{r['resolution']}, {r['classes']} classes "
        f"({r['plugin']}){' [default]' if r['name'] == DEFAULT_DATASET else ''}", f"    {r['description']}"))


@cli.command()
@json_option
@handle_errors
def spaces(as_json):
    """List search spaces and their op sets per edge."""
    from harness.plugins import load_registry

    registry = load_registry()
    described = [s.describe() for s in registry.spaces.values()]
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for d in described:
        click.echo(f"{d['name']}: {d['description']}")
        for kind, ops in d["ops"].items():
            distinct = {tuple(o) for o in ops}
            if len(distinct) == 1:
                click.echo(f"    {kind}: every edge: {', '.join(ops[0])}")
            else:
                click.echo(f"    {kind}:")
                for edge, o in zip(d["edges"], ops):
                    click.echo(f"        {edge:5s} {', '.join(o)}")
        net = d["search_defaults"]
        click.echo(f"    search network: C={net.get('channels')}, {net.get('layers')} {d['layers_unit']}")
        for name, text in d["op_sets"].items():
            click.echo(f"    op set {name}: {text}")
        for i, (name, text) in enumerate(d["eval_protocols"].items()):
            click.echo(f"    eval protocol {name}{' (default)' if i == 0 else ''}: {text}")


@cli.command()
@json_option
@handle_errors
def methods(as_json):
    """List methods (named recipes) with their components."""
    from harness.plugins import load_registry

    from harness.config import resolve

    registry = load_registry()

    def per_space(m) -> dict[str, dict]:
        """What the method searches on each space it applies to, as its ``paper`` preset resolves."""
        out = {}
        dataset = next(iter(registry.datasets))  # the search budget does not depend on the dataset
        for space in (m.spaces if m.spaces is not None else sorted(registry.spaces)):
            sb = resolve(registry, m, space, dataset, 0, "paper", {}, []).budget.search
            searched = registry.space(space, sb.op_set)
            out[space] = {"op_set": sb.op_set, "ops": searched.ops_summary(),
                          "search_network": {"channels": sb.channels, "layers": sb.layers},
                          "epochs": sb.epochs, "batch_size": sb.batch_size}
        return out

    rows = [{"name": m.name, "plugin": m.plugin, **m.components(), "paper": m.paper,
             "spaces": list(m.spaces) if m.spaces is not None else "all", "defaults": m.defaults,
             "budgets": m.budgets, "space_defaults": m.space_defaults, "space_budgets": m.space_budgets,
             "op_sets": dict(m.op_sets), "per_space": per_space(m)}
            for m in registry.methods.values()]
    emit_rows(rows, as_json, lambda r: [f"{r['name']:18s} sampler={r['sampler']} optimizer={r['optimizer']} "
                                        f"selector={r['selector']} cell={r['cell']}  [{r['plugin']}]"])


# ----------------------------------------------------------------------------------------------


@cli.group()
def benchmark():
    """Query and convert tabular benchmarks (any registered one; `harness plugins` lists them)."""


def _benchmark_info(registry, name):
    """The benchmark ``name``, or the only one registered."""
    from harness.errors import unknown

    if name is None:
        if len(registry.benchmarks) == 1:
            return next(iter(registry.benchmarks.values()))
        raise HarnessError(f"more than one benchmark is installed: pass --name, one of "
                           f"{', '.join(sorted(registry.benchmarks))}")
    if name not in registry.benchmarks:
        raise unknown("benchmark", name, registry.benchmarks)
    return registry.benchmarks[name]


@benchmark.command("query")
@click.option("--name", help="Which benchmark (harness plugins lists them; default: the only one installed).")
@click.option("--benchmark", "path", type=click.Path(dir_okay=False),
              help="Its file (default: the benchmark's own default file, as its description says).")
@click.option("--dataset", help="One the benchmark answers for (default: its first).")
@click.argument("arch")
@trust_option
@json_option
@handle_errors
def benchmark_query(name, path, dataset, arch, trust_benchmark_file, as_json):
    """Look up an architecture string: test (and valid) accuracy, with where the numbers come from."""
    from harness.plugins import load_registry
    from harness.runner import open_benchmark

    info = _benchmark_info(load_registry(), name)
    path = path or (info.default_path() if info.default_path is not None else None)
    if path is None:
        raise HarnessError(f"no file for benchmark {info.name!r}: pass --benchmark PATH ({info.doc or info.name})")
    dataset = dataset or (info.datasets[0] if info.datasets else None)
    if dataset is None:
        raise HarnessError(f"benchmark {info.name!r} declares no datasets: pass --dataset NAME")
    result = open_benchmark(info, path, trust_benchmark_file).query(arch, dataset)
    d = result.to_dict()
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"{getattr(result, 'arch', arch)}")
    click.echo(f"  dataset:        {getattr(result, 'dataset', dataset)}")
    click.echo(f"  test accuracy:  {result.test_accuracy:.4f}")
    if getattr(result, "valid_accuracy", None) is not None:
        click.echo(f"  valid accuracy: {result.valid_accuracy:.4f}")
    src = d.get("source")
    if isinstance(src, dict) and {"path", "format", "sha256", "hp", "aggregation"} <= set(src):
        click.echo(f"  source:         {src['path']} ({src['format']}, sha256 {src['sha256'][:12]}..., "
                   f"hp={src['hp']}, {src['aggregation']})")
        if src.get("trust"):
            click.echo(f"  read:           {src['trust']}")
    elif src is not None:
        click.echo(f"  source:         {src}")


@benchmark.command("convert")
@click.option("--name", help="Which benchmark (default: the only one installed).")
@click.argument("official", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@trust_option
@handle_errors
def benchmark_convert(name, official, output, trust_benchmark_file):
    """Write a benchmark's compact table from its official file (for the built-in one: .pth -> CSV)."""
    from harness.plugins import load_registry

    registry = load_registry()
    info = _benchmark_info(registry, name)
    if info.converter is None:
        able = sorted(n for n, b in registry.benchmarks.items() if b.converter is not None)
        raise HarnessError(f"benchmark {info.name!r} has no converter; benchmarks that convert: "
                           f"{', '.join(able) or 'none'}")
    n = info.converter(official, output, trust=trust_benchmark_file)
    click.echo(f"wrote {n} architectures to {output}", err=True)


# ----------------------------------------------------------------------------------------------


@cli.group()
def arch():
    """Inspect architectures."""


@arch.command("info")
@click.option("--space", required=True, help="A space, as `harness spaces` lists them.")
@click.option("--channels", type=int, help="Initial channels (default: the space's evaluation protocol).")
@click.option("--layers", type=int, help="Depth in the space's unit (`harness spaces`: cells, or cells per "
                                         "stage; default: the space's evaluation protocol).")
@click.option("--classes", type=int, default=10, show_default=True)
@click.option("--in-channels", type=int, default=3, show_default=True)
@click.option("--resolution", type=int, default=32, show_default=True)
@click.argument("genotype")
@json_option
@handle_errors
def arch_info(space, channels, layers, classes, in_channels, resolution, genotype, as_json):
    """Parameter count (auxiliary head excluded) and FLOPs (multiply-adds) of a genotype's network."""
    from harness.evaluate import arch_info as info
    from harness.plugins import load_registry
    from harness.spaces import NetShape

    sp = load_registry().space(space)
    g = sp.parse(genotype)
    defaults = sp.eval_defaults()
    result = info(sp, g, channels or defaults["channels"], layers or defaults["layers"],
                  NetShape(in_channels, classes, resolution))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(result["genotype"])
    click.echo(f"  space {result['space']}, C={result['channels']}, layers={result['layers']}, "
               f"{result['classes']} classes")
    click.echo(f"  params: {result['params']:,} ({result['params'] / 1e6:.2f}M, auxiliary head excluded)")
    click.echo(f"  FLOPs:  {result['flops']:,} multiply-adds ({result['flops'] / 1e6:.2f}M)")


# ----------------------------------------------------------------------------------------------
# figures


PLOTS_DIR = Path("harness-runs") / "plots"


def figure_options(fn):
    fn = click.option("--format", "fmt", default="png", show_default=True, help="png, svg or pdf.")(fn)
    return click.option("--output", "-o", type=click.Path(dir_okay=False),
                        help=f"Where to write the figure (default: under {PLOTS_DIR}/).")(fn)


def _run_record(store, run_id: int):
    records = _read_records(store, None)
    for r in records:
        if r.id == run_id:
            return r
    ids = ", ".join(str(r.id) for r in records[-20:]) or "(none)"
    raise HarnessError(f"no run {run_id} in {store}; run ids there: {ids}" + (" (the last 20)" if len(records) > 20 else ""))


def _wrote(paths) -> None:
    for path in paths if isinstance(paths, list) else [paths]:
        click.echo(f"wrote {path}", err=True)


@cli.group()
def plot():
    """Figures of a search: op probabilities, derived cells, the collapse, the leaderboard (the plot extra)."""


@plot.command("alphas")
@click.argument("run_id", type=int)
@store_option
@figure_options
@handle_errors
def plot_alphas(run_id, store, output, fmt):
    """Every op's probability on every edge over the search epochs of run RUN_ID, the derived op marked."""
    from harness.plot import alphas_figure, check_format, save
    from harness.plugins import load_registry

    check_format(fmt)
    record = _run_record(store, run_id)
    fig = alphas_figure(record, load_registry().space(record.space))
    _wrote(save(fig, output or PLOTS_DIR / f"run-{run_id}-alphas.{fmt}", fmt))


@plot.command("cell")
@click.argument("run_id", type=int, required=False)
@store_option
@click.option("--genotype", help="Draw this genotype instead of a run's (with --space).")
@click.option("--space", help="The space of --genotype (harness spaces lists them).")
@click.option("--engine", default="auto", show_default=True,
              help="dot (Graphviz), python (matplotlib layout) or auto (dot where it is installed).")
@figure_options
@handle_errors
def plot_cell(run_id, store, genotype, space, engine, output, fmt):
    """The derived cells of run RUN_ID (or of --genotype on --space) as labelled graphs."""
    from harness.plot import plot_cell as draw
    from harness.plugins import load_registry

    registry = load_registry()
    if (run_id is None) == (genotype is None):
        raise HarnessError("give a run id or --genotype TEXT --space SPACE (one of the two)")
    if genotype is not None:
        if space is None:
            raise HarnessError(f"--genotype needs --space; valid spaces: {', '.join(registry.spaces)}")
        title, stem = f"{space}: {genotype[:80]}", "cell"
    else:
        record = _run_record(store, run_id)
        if not record.genotype:
            raise HarnessError(f"run {run_id} has no genotype (status {record.status}"
                               + (f": {record.error}" if record.error else "") + ")")
        genotype, space = record.genotype, record.space
        title, stem = f"run {run_id}: {record.method} on {record.space} / {record.dataset}, seed {record.seed}", f"run-{run_id}-cell"
    _wrote(draw(genotype, registry.space(space), output or PLOTS_DIR / f"{stem}.{fmt}", fmt, engine, title))


@plot.command("collapse")
@store_option
@click.option("--space", help="Only runs on this space (default: a panel per space and dataset).")
@figure_options
@handle_errors
def plot_collapse(store, space, output, fmt):
    """Parameter-free ops in the derived normal cell per search epoch, one line per method (mean over seeds,
    band: min-max)."""
    from harness.plot import check_format, collapse_figure, save

    check_format(fmt)
    fig = collapse_figure(_read_records(store, "completed"), space)
    _wrote(save(fig, output or PLOTS_DIR / (f"collapse-{space}.{fmt}" if space else f"collapse.{fmt}"), fmt))


@plot.command("leaderboard")
@store_option
@click.option("--metric", default="test_accuracy", show_default=True, help="Metric to aggregate.")
@click.option("--preset", default=None, help="Only runs of this preset (default: the one present).")
@click.option("--no-paper", is_flag=True, help="Leave out the papers' reported values.")
@figure_options
@handle_errors
def plot_leaderboard(store, metric, preset, no_paper, output, fmt):
    """Per (space, dataset): each method's mean ± std, every seed as a point, the paper's value as a diamond."""
    from harness.plot import check_format, leaderboard_figure, save

    check_format(fmt)
    df, _ = _board(_read_records(store, "completed"), metric, preset, with_paper=not no_paper)
    _wrote(save(leaderboard_figure(df), output or PLOTS_DIR / f"leaderboard.{fmt}", fmt))


@cli.command()
@store_option
@click.option("--output", "-o", type=click.Path(file_okay=False), default=str(Path("harness-runs") / "report"),
              show_default=True, help="Folder to write the site to (index.html, runs/, figures/).")
@click.option("--metric", default="test_accuracy", show_default=True, help="Metric of the leaderboard.")
@click.option("--preset", default=None, help="Leaderboard of this preset (default: the one present).")
@click.option("--engine", default="auto", show_default=True,
              help="How cells are drawn: dot (Graphviz), python (matplotlib layout) or auto.")
@click.option("--jobs", "-j", type=int, default=1, show_default=True,
              help="Draw the run pages' figures in this many processes at once.")
@handle_errors
def report(store, output, metric, preset, engine, jobs):
    """One static HTML site of the store: the leaderboard with the papers' numbers, the figures, a page per run."""
    from harness.plot import ENGINES
    from harness.plugins import load_registry
    from harness.report import build

    if engine not in ENGINES:
        raise HarnessError(f"unknown drawing engine {engine!r}; valid choices: {', '.join(ENGINES)}")
    if jobs < 1:
        raise HarnessError(f"--jobs must be 1 or more, not {jobs}")
    records = _read_records(store, None)
    if not records:
        raise HarnessError(f"the store {store} has no runs; make some with `harness run ...`")
    registry = load_registry()
    board, why, header = None, "", None
    try:
        board, header = _board(records, metric, preset, with_paper=True)
    except HarnessError as exc:  # no completed run yet, say: the rest of the site is still worth having
        why = str(exc)
    spaces = {name: registry.space(name) for name in {r.space for r in records} if name in registry.spaces}
    index = build(records, output, spaces=spaces, board=board, board_error=why, header=header, engine=engine,
                  title=f"nas-harness report: {store}", jobs=jobs)
    click.echo(f"wrote {index} ({len(records)} run pages); open it in a browser, no server needed", err=True)


def main():
    cli()


if __name__ == "__main__":
    main()
