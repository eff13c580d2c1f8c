"""NAS-Bench-201 look-ups: the shared compact CSV, a small official-format file built here, bad inputs."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from harness.benchmarks import nb201
from harness.benchmarks.nb201 import (
    BenchmarkResult,
    NB201Benchmark,
    convert,
    default_benchmark_path,
    open_benchmark,
)
from harness.errors import HarnessError
from harness.genotypes import parse_nb201
from tests.nb201kit import ALL_SKIP, ARCH0, ARCH11, ARCH284, BEST_C10, HP12, HP200, SEED_OFFSETS, STRINGS

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "nb201" / "nb201_test_accuracy_200ep.csv"



@pytest.fixture(scope="module")
def shared() -> NB201Benchmark:
    if not SHARED_CSV.is_file():
        pytest.skip(f"shared NAS-Bench-201 table not found at {SHARED_CSV} (needs the ../shared checkout)")
    return open_benchmark(SHARED_CSV)


# ------------------------------------------------------------------------------------ shared CSV

def test_shared_csv_known_numbers(shared):
    assert len(shared) == 15625
    assert shared.datasets == ("cifar10", "cifar100", "imagenet16-120")
    assert shared.query(BEST_C10, "cifar10").test_accuracy == pytest.approx(94.373, abs=1e-3)
    best = max(shared.arch_strings(), key=lambda a: shared.query(a, "cifar10").test_accuracy)
    assert best == BEST_C10
    expected = {"cifar10": 54.30, "cifar100": 15.61, "imagenet16-120": 16.32}
    for dataset, value in expected.items():
        res = shared.query(ALL_SKIP, dataset)
        assert round(res.test_accuracy, 2) == value
        assert res.valid_accuracy is None and res.index is None
    res = shared.query(ARCH0, "cifar10")
    assert res.test_accuracy == pytest.approx(85.8633, abs=1e-4)
    assert res.arch == ARCH0 and res.dataset == "cifar10"


def test_shared_csv_source_and_genotype_input(shared):
    res = shared.query(parse_nb201(ARCH0), "CIFAR100")  # a genotype object; dataset case-insensitive
    assert res.dataset == "cifar100"
    assert res.test_accuracy == pytest.approx(52.9133, abs=1e-4)
    src = res.source
    assert src.format == "compact-csv" and src.hp == "200" and src.aggregation == "mean over seeds"
    assert src.sha256 == hashlib.sha256(SHARED_CSV.read_bytes()).hexdigest()
    assert Path(src.path) == SHARED_CSV
    d = json.loads(json.dumps(res.to_dict()))
    assert d["source"]["sha256"] == src.sha256 and d["source"]["hp"] == "200"
    assert d["test_accuracy"] == res.test_accuracy
    assert open_benchmark(SHARED_CSV) is shared  # cached per process


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_NB201_BENCHMARK", str(tmp_path / "x.csv"))
    assert default_benchmark_path() == tmp_path / "x.csv"
    monkeypatch.delenv("HARNESS_NB201_BENCHMARK")
    found = default_benchmark_path()
    # the shared table where it is beside the checkout, else the one packaged with the harness
    assert found == (SHARED_CSV if SHARED_CSV.is_file() else nb201.PACKAGED_FILE)


# ------------------------------------------------------------------------- the packaged table
# expected numbers: shared/benchmarks/nb201/README.md (from NATS-Bench), and the NB201 rows the papers print
# for DARTS (the all-skip cell): 54.30 / 15.61 / 16.32


def test_packaged_table_has_every_cell_and_the_known_numbers():
    bench = open_benchmark(nb201.PACKAGED_FILE)
    assert len(bench) == 15625 and bench.source.format == "compact-csv"
    for dataset, best in (("cifar10", 94.373), ("cifar100", 73.513), ("imagenet16-120", 47.311)):
        top = max(bench.arch_strings(), key=lambda a: bench.query(a, dataset).test_accuracy)
        assert bench.query(top, dataset).test_accuracy == pytest.approx(best, abs=1e-3)
    assert max(bench.arch_strings(), key=lambda a: bench.query(a, "cifar10").test_accuracy) == BEST_C10
    assert [round(bench.query(ALL_SKIP, d).test_accuracy, 2) for d in bench.datasets] == [54.30, 15.61, 16.32]
    # a third of the uncompressed table's size or less: small enough to ship in the wheel
    assert nb201.PACKAGED_FILE.stat().st_size < 1_000_000


def test_packaged_table_equals_the_shared_one(shared):
    packaged = open_benchmark(nb201.PACKAGED_FILE)
    assert sorted(packaged.arch_strings()) == sorted(shared.arch_strings())
    for arch in shared.arch_strings():
        for dataset in shared.datasets:
            assert packaged.query(arch, dataset).test_accuracy == shared.query(arch, dataset).test_accuracy


def test_query_works_out_of_the_box_with_the_packaged_table(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from harness.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nb201, "SHARED_FILE", ("no-such-shared", "x.csv"))  # as on a machine without ../shared
    out = CliRunner().invoke(cli, ["benchmark", "query", ALL_SKIP, "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    assert round(answer["test_accuracy"], 2) == 54.30
    assert answer["source"]["path"] == str(nb201.PACKAGED_FILE)


def test_corrupt_gzip_table_is_named(tmp_path):
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(nb201.PACKAGED_FILE.read_bytes()[:50_000])  # a download cut short
    with pytest.raises(HarnessError, match=r"corrupt NAS-Bench-201 CSV .*cut\.csv\.gz"):
        open_benchmark(cut)


# ------------------------------------------------------------------------- official format file

# the official-format file: tests/nb201kit.py builds it, tests/conftest.py's ``official_file`` fixture
# writes it once per module


def _check_official_numbers(bench: NB201Benchmark) -> None:
    for index, arch in STRINGS.items():
        want, trap = HP200[index], HP12[index]
        c10 = bench.query(arch, "cifar10")
        assert c10.index == index
        assert c10.test_accuracy == pytest.approx(want["cifar10"]["ori-test"], abs=1e-9)
        assert c10.valid_accuracy == pytest.approx(want["cifar10-valid"]["x-valid"], abs=1e-9)
        assert c10.test_accuracy != pytest.approx(trap["cifar10"]["ori-test"], abs=0.1)
        c100 = bench.query(arch, "cifar100")
        assert c100.test_accuracy == pytest.approx(want["cifar100"]["x-test"], abs=1e-9)
        assert c100.valid_accuracy == pytest.approx(want["cifar100"]["x-valid"], abs=1e-9)
        assert c100.test_accuracy != pytest.approx(trap["cifar100"]["x-test"], abs=0.1)
        im = bench.query(arch, "imagenet16-120")
        assert im.test_accuracy == pytest.approx(want["ImageNet16-120"]["x-test"], abs=1e-9)
        assert im.valid_accuracy == pytest.approx(want["ImageNet16-120"]["x-valid"], abs=1e-9)
        # the mean over seeds, not one seed's number (every seed is >= 0.25 away from the mean)
        offsets = (-0.5, 0.5) if index == 11 else SEED_OFFSETS
        single_seed = [want["cifar10"]["ori-test"] + off for off in offsets]
        assert all(abs(c10.test_accuracy - s) >= 0.25 for s in single_seed)


def test_official_format_hp200_mean_over_seeds(official_file):
    bench = open_benchmark(official_file)
    assert bench.source.format == "nas-bench-201"
    assert bench.source.hp == "200" and bench.source.aggregation == "mean over seeds"
    assert bench.source.sha256 == hashlib.sha256(official_file.read_bytes()).hexdigest()
    assert len(bench) == 3 and bench.datasets == ("cifar10", "cifar100", "imagenet16-120")
    _check_official_numbers(bench)
    # cross-check one number against the library itself, called the right way
    from nas_201_api import NASBench201API
    import torch
    api = NASBench201API(torch.load(official_file, map_location="cpu", weights_only=False), verbose=False)
    info = api.get_more_info(11, "cifar10", iepoch=None, hp="200", is_random=False)
    assert bench.query(ARCH11, "cifar10").test_accuracy == pytest.approx(float(info["test-accuracy"]))
    seeds = api.query_by_index(11, "cifar10", hp="200")
    singles = [r.get_eval("ori-test")["accuracy"] for r in seeds.values()]
    assert len(singles) == 2 and all(abs(s - info["test-accuracy"]) > 0.4 for s in singles)


def test_convert_official_to_compact_csv(official_file, tmp_path):
    out = tmp_path / "mini.csv"
    assert convert(official_file, out) == 3
    with open(out, newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:5] == list(nb201.CSV_COLUMNS) and header[5:] == list(nb201.CSV_EXTRA_COLUMNS)
    bench = open_benchmark(out)
    assert bench.source.format == "compact-csv"
    _check_official_numbers(bench)
    a = open_benchmark(official_file).query(ARCH284, "cifar100")
    b = bench.query(ARCH284, "cifar100")
    assert (a.test_accuracy, a.valid_accuracy, a.index) == (b.test_accuracy, b.valid_accuracy, b.index)
    with pytest.raises(HarnessError, match="official"):
        convert(out, tmp_path / "again.csv")


# ----------------------------------------------------------------------------------- bad inputs

def _raises(fn, *args, contains: str) -> str:
    with pytest.raises(HarnessError) as info:
        fn(*args)
    msg = str(info.value)
    assert contains in msg, msg
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    msg = _raises(open_benchmark, missing, contains=str(missing))
    assert "--benchmark" in msg and "HARNESS_NB201_BENCHMARK" in msg


def test_not_a_csv(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a benchmark\njust text\n")
    msg = _raises(open_benchmark, path, contains=str(path))
    assert "compact CSV" in msg and ".pth" in msg


def test_binary_unknown(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00\x01\x02garbage" * 10)
    _raises(open_benchmark, path, contains=str(path))


def test_csv_wrong_columns(tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("arch,acc\n" + ARCH0 + ",85.8\n")
    msg = _raises(open_benchmark, path, contains=str(path))
    assert "ArchitectureString" in msg and "CIFAR10TestAccuracy200Epochs" in msg


def _mini_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    lines = [",".join(nb201.CSV_COLUMNS)] + [f"{a},{b},{c},{arch}," for a, b, c, arch in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_bad_number_and_truncated(tmp_path):
    bad = _mini_csv(tmp_path / "bad.csv", [("85.86", "5x2.9", "26.6", ARCH0)])
    msg = _raises(open_benchmark, bad, contains="'5x2.9'")
    assert str(bad) in msg and "line 2" in msg
    full = _mini_csv(tmp_path / "trunc.csv", [("85.86", "52.9", "26.6", ARCH0), ("91.58", "67.6", "30.2", ARCH11)])
    text = full.read_text()
    full.write_text(text[: text.rindex(ARCH11) + 10])  # cut in the middle of the last row
    msg = _raises(open_benchmark, full, contains=str(full))
    assert "line 3" in msg


def test_truncated_pth(official_file, tmp_path):
    path = tmp_path / "truncated.pth"
    data = official_file.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    msg = _raises(open_benchmark, path, contains=str(path))
    assert "corrupt" in msg


def test_torch_file_without_nb201_keys(tmp_path):
    import torch

    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    msg = _raises(open_benchmark, path, contains=str(path))
    assert "meta_archs" in msg


def test_bad_queries(tmp_path):
    bench = open_benchmark(_mini_csv(tmp_path / "mini.csv", [("85.86", "52.9", "26.6", ARCH0)]))
    assert isinstance(bench.query(ARCH0, "cifar10"), BenchmarkResult)
    msg = _raises(bench.query, ARCH0, "svhn", contains="'svhn'")
    assert "cifar10, cifar100, imagenet16-120" in msg
    bad_op = ARCH0.replace("avg_pool_3x3", "sep_conv_3x3")
    msg = _raises(bench.query, bad_op, "cifar10", contains="'sep_conv_3x3'")
    assert "nor_conv_3x3" in msg and "avg_pool_3x3" in msg
    _raises(bench.query, "|nor_conv_3x3~0|+|junk|", "cifar10", contains="|nor_conv_3x3~0|+|junk|")
    msg = _raises(bench.query, ALL_SKIP, "cifar10", contains=ALL_SKIP)
    assert "not in" in msg and str(tmp_path / "mini.csv") in msg
    assert ARCH0 in bench and ALL_SKIP not in bench and "garbage" not in bench


def test_official_arch_not_evaluated(official_file):
    bench = open_benchmark(official_file)
    _raises(bench.query, ALL_SKIP, "cifar10", contains=ALL_SKIP)
    _raises(bench.query, ARCH0, "ImageNet16-120x", contains="'ImageNet16-120x'")


def test_the_builtin_benchmark_passes_the_public_check(official_file):
    """harness.testing.check_benchmark on the core's registered nb201 opener, with a file in the official
    format: every declared dataset answers with the numbers the file holds."""
    from harness.plugins import load_registry
    from harness.testing import check_benchmark

    info = load_registry().benchmarks["nb201"]
    index, arch = next(iter(STRINGS.items()))
    results = check_benchmark(info.opener, official_file, arch, datasets=info.datasets, name="nb201",
                              plugin=info.plugin)
    assert set(results) == {"cifar10", "cifar100", "imagenet16-120"}
    assert results["cifar10"].test_accuracy == pytest.approx(HP200[index]["cifar10"]["ori-test"], abs=1e-9)
