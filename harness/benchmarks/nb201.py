"""NAS-Bench-201 look-ups: the accuracy of a cell architecture without training it.

Two file formats are read; ``open_benchmark`` tells them apart by their first bytes:

* ``compact-csv`` -- the table in ``shared/benchmarks/nb201/nb201_test_accuracy_200ep.csv``: columns
  ``CIFAR10TestAccuracy200Epochs, CIFAR100TestAccuracy200Epochs, ImageNetTestAccuracy200Epochs,
  ArchitectureString, UniqueString``, optionally followed by ``Index, CIFAR10ValidAccuracy200Epochs,
  CIFAR100ValidAccuracy200Epochs, ImageNetValidAccuracy200Epochs`` (what ``convert`` writes). Without
  the valid columns ``valid_accuracy`` is None and ``index`` is None. The file may be gzip-compressed (as
  the copy packaged with the harness, ``data/nb201_test_accuracy_200ep.csv.gz``, used when no other file is
  set or found).
* ``nas-bench-201`` -- an official ``NAS-Bench-201-v1_0-e61699.pth`` / ``NAS-Bench-201-v1_1-096897.pth``
  file, read with the ``nas-bench-201`` package (``nas_201_api``). Every number comes from
  ``get_more_info(index, dataset, iepoch=None, hp='200', is_random=False)``: the final epoch of the
  200-epoch schedule, averaged over all seeds (the library defaults ``hp='12'``, ``is_random=True`` would
  give 12-epoch numbers of one random seed).

Dataset mapping (harness name -> NB201 dataset / evaluation set / ``get_more_info`` key; the
convention of the NB201 paper's tables):

* ``cifar10``: test = ``cifar10`` (trained on train+valid) ``ori-test`` -> ``test-accuracy``;
  valid = ``cifar10-valid`` (trained on the 25k train half) ``x-valid`` -> ``valid-accuracy``.
* ``cifar100``: test = ``cifar100`` ``x-test`` -> ``test-accuracy``; valid = ``cifar100`` ``x-valid`` ->
  ``valid-accuracy``.
* ``imagenet16-120``: test = ``ImageNet16-120`` ``x-test`` -> ``test-accuracy``; valid =
  ``ImageNet16-120`` ``x-valid`` -> ``valid-accuracy``.

Dataset names are matched case-insensitively (``ImageNet16-120`` works too).

Accuracies are top-1 in percent. An official file is loaded once, every evaluated architecture's
numbers are extracted into a small table and the (large) API object is dropped, so the process keeps
only the table. The extraction makes 4 ``get_more_info`` calls per architecture (about 3 ms per
architecture on records with full 200-epoch logs, so roughly a minute for all 15,625, on top of the
load itself); convert the official file once with ``convert`` and use the CSV afterwards.
``open_benchmark`` caches the opened benchmark per (resolved path, mtime, size).

Official ``.pth`` files are never unpickled in full unless the user says so. Unpickling runs whatever the
file asks for, and a benchmark file is typically downloaded from a shared drive. By default the file is read
with ``torch.load(weights_only=True)``, which builds only tensors and plain containers and refuses anything
else (then the message names the file's SHA-256, the global it asked for, and ``--trust-benchmark-file``);
``trust=True`` (``--trust-benchmark-file``) unpickles it in full with ``weights_only=False``, faster on a
multi-GB file. The record says which (``source.trust``).

The official releases cannot be recognised by a checksum instead: their documentation (NAS-Bench-201
README.md L32/L37 @7fa5a614, AutoDL-Projects docs/NAS-Bench-201.md L28/L33 @f46486e2) gives only "the
last six digits" of an unnamed digest in the file names, ``e61699`` (v1.0) and ``096897`` (v1.1), and no
full checksum exists in either repository or the maintainer's issue replies. Six hex digits are 24 bits:
a file with any chosen suffix is found in seconds, so a suffix proves nothing. The harness computes the
file's MD5 (the digest the same author's NATS-Bench names use) and records whether its last six digits
match a release name (``source.release``), as information only. The official files hold the dicts of
``nas_201_api``'s ``create_state_dict`` methods, which a weights-only load reads (the official-format file
the tests build loads that way); a real 2020 release has not been opened here.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.genotypes import NB201_EXAMPLE, NB201Genotype, parse_nb201
from harness.safeload import weights_only_refusal

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DATASETS = ("cifar10", "cifar100", "imagenet16-120")
HP = "200"
AGGREGATION = "mean over seeds"
FORMAT_CSV = "compact-csv"
FORMAT_OFFICIAL = "nas-bench-201"
ENV_VAR = "HARNESS_NB201_BENCHMARK"
SHARED_FILE = ("shared", "benchmarks", "nb201", "nb201_test_accuracy_200ep.csv")
# the compact table shipped as package data (provenance and licence: data/README.md)
PACKAGED_FILE = Path(__file__).resolve().parent / "data" / "nb201_test_accuracy_200ep.csv.gz"
GZIP_MAGIC = b"\x1f\x8b"

CSV_TEST_COLUMNS = (
    "CIFAR10TestAccuracy200Epochs",
    "CIFAR100TestAccuracy200Epochs",
    "ImageNetTestAccuracy200Epochs",
)
CSV_COLUMNS = CSV_TEST_COLUMNS + ("ArchitectureString", "UniqueString")
CSV_VALID_COLUMNS = (
    "CIFAR10ValidAccuracy200Epochs",
    "CIFAR100ValidAccuracy200Epochs",
    "ImageNetValidAccuracy200Epochs",
)
CSV_EXTRA_COLUMNS = ("Index",) + CSV_VALID_COLUMNS

# harness dataset -> ((NB201 dataset, get_more_info key) for test, (...) for valid)
_OFFICIAL_KEYS = {
    "cifar10": (("cifar10", "test-accuracy"), ("cifar10-valid", "valid-accuracy")),
    "cifar100": (("cifar100", "test-accuracy"), ("cifar100", "valid-accuracy")),
    "imagenet16-120": (("ImageNet16-120", "test-accuracy"), ("ImageNet16-120", "valid-accuracy")),
}
_OFFICIAL_REQUIRED_KEYS = ("meta_archs", "arch2infos", "evaluated_indexes")
# the documented file-name suffixes ("the last six digits for this file"; see the module docstring)
RELEASE_SUFFIXES = {"e61699": "NAS-Bench-201-v1_0-e61699.pth", "096897": "NAS-Bench-201-v1_1-096897.pth"}
TRUST_WEIGHTS_ONLY = "weights-only (nothing in the file can run)"
TRUST_USER = "trusted by the user (--trust-benchmark-file): unpickled in full"

_SET_HINT = f"set the file with --benchmark PATH or ${ENV_VAR}"
_FORMATS_HINT = (
    "supported formats: a compact CSV with columns " + ",".join(CSV_COLUMNS)
    + " (optionally " + ",".join(CSV_EXTRA_COLUMNS) + "), or an official NAS-Bench-201 .pth "
    "(NAS-Bench-201-v1_0-e61699.pth / NAS-Bench-201-v1_1-096897.pth)"
)


@dataclass(frozen=True)
class BenchmarkSource:
    """Which file answered a query; recorded with every result."""

    path: str
    sha256: str
    format: str  # "compact-csv" | "nas-bench-201"
    hp: str = HP
    aggregation: str = AGGREGATION
    # official files only: how the file was read ("weights-only": nothing in it can run; "trusted by the
    # user (--trust-benchmark-file)": unpickled in full) and the release whose name suffix its MD5 ends with
    trust: str | None = None
    release: str | None = None


@dataclass(frozen=True)
class BenchmarkResult:
    arch: str  # canonical NB201 string
    index: int | None  # benchmark index when the file has it
    dataset: str  # harness name
    test_accuracy: float
    valid_accuracy: float | None
    source: BenchmarkSource

    def to_dict(self) -> dict:
        return asdict(self)


# One architecture's numbers: (index, test accuracies, valid accuracies), both tuples in DATASETS order,
# None where the file has no number.
_Row = tuple[int | None, tuple[float | None, ...], tuple[float | None, ...]]


class NB201Benchmark:
    """A NAS-Bench-201 table: ``query(arch, dataset)`` -> ``BenchmarkResult``."""

    datasets: tuple[str, ...] = DATASETS
    source: BenchmarkSource

    def __init__(self, rows: dict[str, _Row], source: BenchmarkSource):
        self._rows = rows
        self.source = source
        self.datasets = tuple(
            name for k, name in enumerate(DATASETS) if any(row[1][k] is not None for row in rows.values())
        )

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, arch: object) -> bool:
        try:
            return canonical_arch(arch) in self._rows  # type: ignore[arg-type]
        except HarnessError:
            return False

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} archs, datasets={self.datasets}, "
                f"path={self.source.path!r}, format={self.source.format!r})")

    def arch_strings(self) -> list[str]:
        return list(self._rows)

    def query(self, arch: str | NB201Genotype, dataset: str) -> BenchmarkResult:
        key = canonical_arch(arch)
        name = _dataset_name(dataset, self.datasets)
        row = self._rows.get(key)
        if row is None:
            raise HarnessError(
                f"architecture {key!r} is not in the NAS-Bench-201 benchmark {self.source.path} "
                f"({len(self._rows)} architectures); check the string or use the full benchmark file"
            )
        k = DATASETS.index(name)
        test = row[1][k]
        if test is None:
            raise HarnessError(
                f"the benchmark {self.source.path} has no {name} test accuracy for architecture {key!r}; "
                f"covered datasets: {', '.join(self.datasets)}"
            )
        return BenchmarkResult(key, row[0], name, test, row[2][k], self.source)


class CompactCSVBenchmark(NB201Benchmark):
    """The compact CSV table (the shared file, or what ``convert`` wrote)."""


class OfficialNB201Benchmark(NB201Benchmark):
    """An official NAS-Bench-201 ``.pth`` file, reduced to its hp-200 seed-mean numbers."""


def canonical_arch(arch: str | NB201Genotype) -> str:
    """Parse and check an NB201 architecture; return its canonical string."""
    if isinstance(arch, NB201Genotype):
        genotype = arch
    elif isinstance(arch, str):
        genotype = parse_nb201(arch)
    else:
        raise HarnessError(
            f"NAS-Bench-201 architecture must be a string like {NB201_EXAMPLE} or an NB201Genotype, "
            f"got {type(arch).__name__} {arch!r}"
        )
    if len(genotype.ops) != len(NB201Genotype.EDGES):
        raise HarnessError(f"NAS-Bench-201 genotype needs 6 edge ops, got {len(genotype.ops)}: {genotype.ops!r}")
    for op in genotype.ops:
        if op not in NB201_OPS:
            raise HarnessError(
                f"unknown NAS-Bench-201 op {op!r} in {genotype.to_string()!r}; valid ops: {', '.join(NB201_OPS)}"
            )
    return genotype.to_string()


def _dataset_name(dataset: str, covered: tuple[str, ...]) -> str:
    name = dataset.strip().lower() if isinstance(dataset, str) else dataset
    if name not in covered:
        raise HarnessError(
            f"dataset {dataset!r} is not covered by this NAS-Bench-201 benchmark; covered datasets: "
            f"{', '.join(covered) or '(none)'}"
        )
    return name


# --------------------------------------------------------------------------------------------- files

def default_benchmark_path() -> Path | None:
    """``$HARNESS_NB201_BENCHMARK`` if set; else the shared CSV next to the cwd or the repo; else the table
    packaged with the harness (``PACKAGED_FILE``, the same numbers gzip-compressed)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    candidates = (
        Path.cwd() / ".." / Path(*SHARED_FILE),
        Path(__file__).resolve().parents[2] / ".." / Path(*SHARED_FILE),
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return PACKAGED_FILE if PACKAGED_FILE.is_file() else None


def _digests(path: Path) -> tuple[str, str]:
    """(SHA-256, MD5) of the file, in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open_text(path: Path):
    """A CSV file for reading, gzip-compressed or not (told by its first bytes)."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == GZIP_MAGIC
    if gzipped:
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(GZIP_MAGIC):  # a compressed CSV: look at its first decompressed bytes
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(4096)
        except (OSError, EOFError) as exc:
            raise HarnessError(f"corrupt gzip-compressed NAS-Bench-201 benchmark {path}: {_one_line(exc)}") from None
    if head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return FORMAT_OFFICIAL  # torch zip archive or a (legacy torch) pickle
    if b"\x00" in head:
        raise HarnessError(f"unknown NAS-Bench-201 benchmark format of {path}: binary data; {_FORMATS_HINT}")
    text = head.decode("utf-8-sig", errors="replace")  # 4096 bytes may end inside a character
    header = text.splitlines()[0] if text else ""
    columns = [c.strip() for c in next(csv.reader([header]), [])] if header else []
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if missing:
        if len(columns) > 1:
            found = f"a CSV whose header lacks {', '.join(missing)} (has {', '.join(columns)})"
        else:
            found = f"not a CSV (first line {header[:80]!r})"
        raise HarnessError(f"unknown NAS-Bench-201 benchmark format of {path}: {found}; {_FORMATS_HINT}")
    return FORMAT_CSV


def _number(text: str, path: Path, line: int, column: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise HarnessError(
            f"corrupt NAS-Bench-201 CSV {path}: line {line}, column {column} holds {text!r}, not a number; "
            f"re-create the file (e.g. with harness.benchmarks.nb201.convert)"
        ) from None
    return None if math.isnan(value) else value


def _load_csv(path: Path) -> dict[str, _Row]:
    rows: dict[str, _Row] = {}
    try:
        return _read_csv_rows(path, rows)
    except (OSError, EOFError) as exc:  # a gzip file cut short or damaged
        raise HarnessError(f"corrupt NAS-Bench-201 CSV {path}: {_one_line(exc)} after {len(rows)} rows; "
                           f"re-create it") from None


def _read_csv_rows(path: Path, rows: dict[str, _Row]) -> dict[str, _Row]:
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = [c.strip() for c in next(reader)]
        pos = {name: header.index(name) for name in CSV_COLUMNS}
        test_pos = [pos[c] for c in CSV_TEST_COLUMNS]
        arch_pos = pos["ArchitectureString"]
        valid_pos = [header.index(c) if c in header else None for c in CSV_VALID_COLUMNS]
        index_pos = header.index("Index") if "Index" in header else None
        width = len(header)
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != width:
                raise HarnessError(
                    f"corrupt NAS-Bench-201 CSV {path}: line {line} has {len(fields)} fields, expected {width} "
                    f"(truncated file?); re-create it"
                )
            arch = fields[arch_pos].strip()
            if not (arch.startswith("|") and arch.endswith("|")):
                raise HarnessError(
                    f"corrupt NAS-Bench-201 CSV {path}: line {line} has ArchitectureString {arch!r}, expected "
                    f"a string like {NB201_EXAMPLE}"
                )
            if arch in rows:
                raise HarnessError(f"corrupt NAS-Bench-201 CSV {path}: line {line} repeats architecture {arch!r}")
            tests = tuple(_number(fields[p], path, line, header[p]) for p in test_pos)
            valids = tuple(None if p is None else _number(fields[p], path, line, header[p]) for p in valid_pos)
            index = None
            if index_pos is not None and fields[index_pos].strip():
                try:
                    index = int(fields[index_pos])
                except ValueError:
                    raise HarnessError(
                        f"corrupt NAS-Bench-201 CSV {path}: line {line}, column Index holds "
                        f"{fields[index_pos]!r}, not an integer"
                    ) from None
            rows[arch] = (index, tests, valids)
    if not rows:
        raise HarnessError(f"corrupt NAS-Bench-201 CSV {path}: no data rows after the header")
    return rows


class _SharedDict(dict):
    """A dict that ``copy.deepcopy`` returns as is.

    ``NASBench201API(dict)`` deep-copies the whole dict it is given; wrapping ``arch2infos`` in this class
    avoids holding the multi-GB records twice. The API only reads them, and we drop both afterwards.
    """

    def __deepcopy__(self, memo: dict) -> _SharedDict:
        return self


def _load_official(path: Path, sha256: str, trust: bool) -> dict[str, _Row]:
    try:
        import torch
        from nas_201_api import NASBench201API
    except ImportError as exc:
        raise HarnessError(
            f"reading the official NAS-Bench-201 file {path} needs torch and the nas-bench-201 package "
            f"({_one_line(exc)}); install with: pip install nas-bench-201"
        ) from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as exc:  # truncated zip / pickle, wrong torch archive, a refused global, ...
        refused = None if trust else weights_only_refusal(exc)
        if refused is not None:
            raise HarnessError(
                f"refusing to unpickle NAS-Bench-201 file {path} (sha256 {sha256}): it asks for {refused}, "
                f"which a weights-only load does not build, and nothing from it was run; if you trust this "
                f"file, pass --trust-benchmark-file to unpickle it in full (that can run code)"
            ) from None
        raise HarnessError(
            f"corrupt NAS-Bench-201 benchmark file {path}: torch.load failed ({_one_line(exc)}); "
            f"the file is truncated or damaged, download it again"
        ) from None
    if not isinstance(data, dict) or any(key not in data for key in _OFFICIAL_REQUIRED_KEYS):
        got = sorted(map(str, data))[:8] if isinstance(data, dict) else type(data).__name__
        raise HarnessError(
            f"unknown NAS-Bench-201 benchmark format of {path}: a torch file without the keys "
            f"{', '.join(_OFFICIAL_REQUIRED_KEYS)} (found {got}); {_FORMATS_HINT}"
        )
    data = dict(data)
    data["arch2infos"] = _SharedDict(data["arch2infos"])
    try:
        api = NASBench201API(data, verbose=False)
    except Exception as exc:
        raise HarnessError(
            f"corrupt NAS-Bench-201 benchmark file {path}: the nas-bench-201 API rejected it "
            f"({_one_line(exc)})"
        ) from None
    del data
    rows: dict[str, _Row] = {}
    for index in api.evaluated_indexes:
        if index not in api.arch2infos_dict:
            continue
        infos: dict[str, dict] = {}

        def info(nb_dataset: str, index: int = index, infos: dict = infos) -> dict:
            if nb_dataset not in infos:
                try:
                    infos[nb_dataset] = api.get_more_info(index, nb_dataset, iepoch=None, hp=HP, is_random=False)
                except (KeyError, ValueError, IndexError, AssertionError):
                    infos[nb_dataset] = {}  # this arch has no hp-200 run on that dataset
            return infos[nb_dataset]

        tests, valids = [], []
        for name in DATASETS:
            (test_set, test_key), (valid_set, valid_key) = _OFFICIAL_KEYS[name]
            test, valid = info(test_set).get(test_key), info(valid_set).get(valid_key)
            tests.append(None if test is None else float(test))
            valids.append(None if valid is None else float(valid))
        try:
            arch = canonical_arch(api.meta_archs[index])
        except (HarnessError, IndexError) as exc:
            raise HarnessError(
                f"corrupt NAS-Bench-201 benchmark file {path}: bad architecture at index {index} ({_one_line(exc)})"
            ) from None
        rows[arch] = (int(index), tuple(tests), tuple(valids))
    if not rows:
        raise HarnessError(f"corrupt NAS-Bench-201 benchmark file {path}: it holds no evaluated architectures")
    return rows


_CACHE: dict[tuple[str, int, int, bool], NB201Benchmark] = {}


def clear_cache() -> None:
    """Forget every opened benchmark (tests; or to re-read a file replaced with the same mtime)."""
    _CACHE.clear()


def open_benchmark(path: str | os.PathLike | None = None, *, trust: bool = False) -> NB201Benchmark:
    """Open a NAS-Bench-201 benchmark file of either format (``None``: ``default_benchmark_path()``).

    An official ``.pth`` is read weights-only unless ``trust`` (``--trust-benchmark-file``): see the module
    docstring."""
    if path is None:
        path = default_benchmark_path()
        if path is None:
            raise HarnessError(
                f"no NAS-Bench-201 benchmark file found (looked for ../{'/'.join(SHARED_FILE)} from the "
                f"current directory and the repository); {_SET_HINT}"
            )
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise HarnessError(f"NAS-Bench-201 benchmark file {str(path)!r} {what}; {_SET_HINT}")
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, bool(trust))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    fmt = _sniff(resolved)
    sha256, md5 = _digests(resolved)
    if fmt == FORMAT_CSV:
        rows = _load_csv(resolved)
        cls: type[NB201Benchmark] = CompactCSVBenchmark
        source = BenchmarkSource(str(resolved), sha256, fmt, HP, AGGREGATION)
    else:
        rows = _load_official(resolved, sha256, trust)
        cls = OfficialNB201Benchmark
        source = BenchmarkSource(str(resolved), sha256, fmt, HP, AGGREGATION,
                                 trust=TRUST_USER if trust else TRUST_WEIGHTS_ONLY,
                                 release=RELEASE_SUFFIXES.get(md5[-6:]))
    bench = cls(rows, source)
    for stale in [k for k in _CACHE if k[0] == key[0]]:
        del _CACHE[stale]
    _CACHE[key] = bench
    return bench


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def convert(official_path: str | os.PathLike, out_path: str | os.PathLike, *, trust: bool = False) -> int:
    """Write the compact CSV (with Index and valid columns) from an official file; return rows written."""
    bench = open_benchmark(official_path, trust=trust)
    if bench.source.format != FORMAT_OFFICIAL:
        raise HarnessError(
            f"convert needs an official NAS-Bench-201 .pth file, but {official_path} is a "
            f"{bench.source.format} file already"
        )
    out = Path(out_path)
    items = sorted(bench._rows.items(), key=lambda kv: (kv[1][0] is None, kv[1][0] or 0, kv[0]))
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS + CSV_EXTRA_COLUMNS)
        for arch, (index, tests, valids) in items:
            writer.writerow(
                [_fmt(v) for v in tests] + [arch, ""] + ["" if index is None else str(index)]
                + [_fmt(v) for v in valids]
            )
    os.replace(tmp, out)
    return len(items)
