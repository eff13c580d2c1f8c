"""`harness plot`: the cells as graphs (Graphviz and the Python layout), the op probabilities of a real search,
the collapse and leaderboard figures. Expected values come from the genotypes as the papers print them and
from sums done by hand, never from the plotting code."""

import html
import re
import shutil
from collections import Counter

import pytest
from click.testing import CliRunner

from harness.api import RunRecord
from harness.cli import cli
from harness.errors import HarnessError
from harness.plugins import load_registry
from tests.test_genotypes import ARCH_11, DARTS_V2

REGISTRY = load_registry()
TINY = ["--preset", "smoke", "--set", "search.epochs=3", "--set", "eval.epochs=1",
        "--set", "search.max_train_images=64", "--set", "eval.max_train_images=64", "--quiet"]


def invoke(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def matplotlib():
    return pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")


def svg_texts(path) -> list[str]:
    """The text of every <text> element of an SVG (matplotlib with svg.fonttype none, and Graphviz, write
    labels as text)."""
    return [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", path.read_text(), re.S)]


# ----------------------------------------------------------------------------------------------
# cells as graphs: the DARTS paper's DARTS_V2 cells (Liu et al. 2019, Fig. 4 and 5), by hand


def test_darts_v2_cell_graph_has_the_papers_edges():
    graphs = REGISTRY.space("darts").cell_graph(REGISTRY.space("darts").parse(DARTS_V2))
    normal = {(e.src, e.dst, e.op) for e in graphs["normal"].edges}
    assert normal == {
        ("c_{k-2}", "0", "sep_conv_3x3"), ("c_{k-1}", "0", "sep_conv_3x3"),
        ("c_{k-2}", "1", "sep_conv_3x3"), ("c_{k-1}", "1", "sep_conv_3x3"),
        ("c_{k-1}", "2", "sep_conv_3x3"), ("c_{k-2}", "2", "skip_connect"),
        ("c_{k-2}", "3", "skip_connect"), ("0", "3", "dil_conv_3x3"),
        ("0", "c_{k}", ""), ("1", "c_{k}", ""), ("2", "c_{k}", ""), ("3", "c_{k}", ""),
    }
    reduce = Counter(e.op for e in graphs["reduce"].edges if e.op)
    assert reduce == {"max_pool_3x3": 5, "skip_connect": 3}
    # node 3's dil_conv_3x3 from node 0 is edge 3<-2 of the 14 (2,3 | 2..4 | 2..5 order: index 2+3+4+2 = 11)
    assert {e.index for e in graphs["normal"].edges if e.op == "dil_conv_3x3"} == {11}


def test_nb201_cell_graph_leaves_out_none_edges():
    (graph,) = REGISTRY.space("nb201").cell_graph(REGISTRY.space("nb201").parse(ARCH_11)).values()
    # ARCH_11: 1<-0 conv3, 2<-0 conv3, 2<-1 avg pool, 3<-0 none, 3<-1 conv3, 3<-2 avg pool
    assert {(e.src, e.dst, e.op) for e in graph.edges} == {
        ("0", "1", "nor_conv_3x3"), ("0", "2", "nor_conv_3x3"), ("1", "2", "avg_pool_3x3"),
        ("1", "3", "nor_conv_3x3"), ("2", "3", "avg_pool_3x3")}
    assert graph.inputs == ("0",) and graph.output == "3"


def test_layered_layout_puts_each_node_right_of_its_inputs():
    from harness.plot import layered_layout

    graphs = REGISTRY.space("darts").cell_graph(REGISTRY.space("darts").parse(DARTS_V2))
    x = {name: pos[0] for name, pos in layered_layout(graphs["normal"]).items()}
    # by hand: nodes 0, 1 and 2 take only the cell's inputs; node 3 takes c_{k-2} and node 0
    assert x == {"c_{k-2}": 0, "c_{k-1}": 0, "0": 1, "1": 1, "2": 1, "3": 2, "c_{k}": 3}


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_dot_engine_draws_every_op_of_both_cells(tmp_path):
    out = invoke("plot", "cell", "--genotype", DARTS_V2, "--space", "darts", "--engine", "dot", "--format", "svg",
                 "-o", tmp_path / "v2.svg")
    assert "wrote" in out.output
    normal, reduce = Counter(svg_texts(tmp_path / "v2-normal.svg")), Counter(svg_texts(tmp_path / "v2-reduce.svg"))
    assert normal["sep_conv_3x3"] == 5 and normal["skip_connect"] == 2 and normal["dil_conv_3x3"] == 1
    assert reduce["max_pool_3x3"] == 5 and reduce["skip_connect"] == 3
    assert all(normal[n] == 1 for n in ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"))
    png = invoke("plot", "cell", "--genotype", ARCH_11, "--space", "nb201", "--engine", "dot", "-o", tmp_path / "a.png")
    assert (tmp_path / "a-normal.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png.output


def test_python_engine_draws_every_op_of_both_cells(tmp_path):
    matplotlib()
    invoke("plot", "cell", "--genotype", DARTS_V2, "--space", "darts", "--engine", "python", "--format", "svg",
           "-o", tmp_path / "v2.svg")
    texts = Counter(svg_texts(tmp_path / "v2.svg"))
    # both cells in one figure: normal 5 sep + 2 skip + 1 dil, reduce 5 max pool + 3 skip
    assert texts["sep_conv_3x3"] == 5 and texts["skip_connect"] == 5 and texts["dil_conv_3x3"] == 1
    assert texts["max_pool_3x3"] == 5 and texts["normal cell"] == 1 and texts["reduce cell"] == 1


def test_cell_bad_input_names_the_choices(tmp_path):
    bad = invoke("plot", "cell", "--genotype", ARCH_11, "--space", "nb201", "--engine", "neato", ok=False)
    assert bad.exit_code == 2 and "'neato'" in bad.output and "auto, dot, python" in bad.output
    bad = invoke("plot", "cell", "--genotype", ARCH_11, ok=False)
    assert "--space" in bad.output and "nb201" in bad.output and "darts" in bad.output
    bad = invoke("plot", "cell", "--genotype", "|bogus~0|+|x~0|y~1|+|a~0|b~1|c~2|", "--space", "nb201", ok=False)
    assert bad.exit_code == 2 and "bogus" in bad.output
    bad = invoke("plot", "cell", "--genotype", ARCH_11, "--space", "nb201", "--format", "gif", ok=False)
    assert "'gif'" in bad.output and "png, svg, pdf" in bad.output


# ----------------------------------------------------------------------------------------------
# a real search: op probabilities, its cell, the collapse and the leaderboard from the store


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    store = tmp_path_factory.mktemp("plot") / "runs.sqlite"
    invoke("run", "--plugin", "darts", "--space", "nb201", "--dataset", "digits", "--seeds", "0-1",
           "--store", store, *TINY)
    from harness.store import ResultStore

    with ResultStore(store) as results:
        records = results.records(None)
    assert [r.status for r in records] == ["completed", "completed"], [r.error for r in records]
    return store, records


def test_alphas_marks_the_derived_op_of_every_edge(searched, tmp_path):
    matplotlib()
    store, records = searched
    r = records[0]
    invoke("plot", "alphas", r.id, "--store", store, "--format", "svg", "-o", tmp_path / "a.svg")
    texts = svg_texts(tmp_path / "a.svg")
    # the genotype string, read by hand: |op~0|+|op~0|op~1|+|op~0|op~1|op~2| in edge order 1<-0, 2<-0, 2<-1, ...
    ops = re.findall(r"([a-z_0-9]+)~\d", r.genotype)
    edges = ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert [f"normal {e}: {op}" for e, op in zip(edges, ops)] == [t for t in texts if t.startswith("normal ")]
    # one line per op per edge, three epochs each (the curve of the record)
    assert len(r.search["curve"]) == 3
    png = invoke("plot", "alphas", r.id, "--store", store, "-o", tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG" and "a.png" in png.output


def test_plot_cell_of_a_run_and_the_default_output_place(searched, tmp_path, monkeypatch):
    matplotlib()
    store, records = searched
    monkeypatch.chdir(tmp_path)
    invoke("plot", "cell", records[1].id, "--store", store, "--engine", "python")
    assert (tmp_path / "harness-runs" / "plots" / f"run-{records[1].id}-cell.png").stat().st_size > 1000


def test_collapse_and_leaderboard_from_the_store(searched, tmp_path):
    matplotlib()
    store, records = searched
    invoke("plot", "collapse", "--store", store, "--format", "svg", "-o", tmp_path / "c.svg")
    assert "nb201 / digits" in svg_texts(tmp_path / "c.svg")
    invoke("plot", "leaderboard", "--store", store, "--format", "svg", "-o", tmp_path / "l.svg")
    assert "nb201 / digits" in svg_texts(tmp_path / "l.svg")
    bad = invoke("plot", "collapse", "--store", store, "--space", "s3", ok=False)
    assert bad.exit_code == 2 and "'s3'" in bad.output and "nb201" in bad.output


def test_unknown_run_names_the_ids_there(searched):
    store, records = searched
    bad = invoke("plot", "alphas", 999, "--store", store, ok=False)
    assert bad.exit_code == 2 and "999" in bad.output and f"{records[0].id}, {records[1].id}" in bad.output


# ----------------------------------------------------------------------------------------------
# the figures' data, from records made by hand


def record(method, seed, counts, *, space="s2", acc=90.0, run_id=1):
    curve = [{"epoch": e, "train_loss": 1.0, "param_free_normal": c} for e, c in enumerate(counts)]
    return RunRecord(method=method, space=space, dataset="cifar10", seed=seed, preset="smoke", config={"seed": seed},
                     config_key=f"{method}{space}{seed}", status="completed", search={"curve": curve},
                     metrics={"test_accuracy": acc}, id=run_id)


def test_collapse_lines_are_the_mean_over_seeds_and_the_band_the_range():
    matplotlib()
    from harness.plot import collapse_figure

    fig = collapse_figure([record("darts", 0, [1, 2, 6]), record("darts", 1, [3, 4, 8]), record("rome", 0, [0, 0, 1])])
    (ax,) = [a for a in fig.axes if a.get_visible()]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert lines == {"darts (n=2)": [2.0, 3.0, 7.0], "rome (n=1)": [0.0, 0.0, 1.0]}
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    (band,) = ax.collections  # one band: darts has two seeds, rome one
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 1.0 and ys.max() == 8.0


def test_leaderboard_figure_shows_mean_std_each_seed_and_the_paper():
    matplotlib()
    from harness.leaderboard import leaderboard, with_paper
    from harness.plot import leaderboard_figure

    runs = [record("darts", s, [0], space="nb201", acc=a, run_id=s) for s, a in ((0, 50.0), (1, 52.0), (2, 57.0))]
    fig = leaderboard_figure(with_paper(leaderboard(runs), REGISTRY.methods))
    (ax,) = [a for a in fig.axes if a.get_visible()]
    marks = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}
    assert sorted(marks["one seed"][0]) == [50.0, 52.0, 57.0]
    # the paper's DARTS-V1 NAS-Bench-201 CIFAR-10 test accuracy, 54.30 (Single-DARTS Table 1, from NB201)
    assert marks["paper"][0] == [pytest.approx(54.30)]
    (bar,) = ax.containers  # mean 53.0, sample std sqrt(((-3)^2 + (-1)^2 + 4^2) / 2) = sqrt(13)
    x, _ = bar.lines[0].get_data()
    assert list(x) == [53.0]
    (caps,) = [c for c in bar.lines[2]][:1]
    segment = caps.get_segments()[0]
    assert segment[1][0] - segment[0][0] == pytest.approx(2 * 13 ** 0.5)


def test_alphas_of_a_record_without_per_epoch_weights_says_so():
    matplotlib()
    from harness.plot import alphas_figure

    bare = record("darts", 0, [1])
    bare.search["curve"][0].pop("param_free_normal")
    with pytest.raises(HarnessError, match="no per-epoch architecture weights"):
        alphas_figure(bare, REGISTRY.space("s2"))


def test_every_method_in_a_figure_gets_a_look_of_its_own():
    """The collapse study has 14 methods; matplotlib's default cycle repeats after 10 colours."""
    from harness.plot import method_styles

    styles = method_styles([f"m{i}" for i in range(45)])
    looks = {(s["color"], s["marker"], s["linestyle"]) for s in styles.values()}
    assert len(looks) == 45
    assert len({styles[f"m{i}"]["color"] for i in range(20)}) == 20
