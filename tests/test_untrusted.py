"""Untrusted files never run code (issue 11): dataset pickles, NAS-Bench-201 .pth files, checkpoints.

Each malicious file would create a marker file when unpickled; every reader must refuse it with one line
naming the file, and the marker must never appear. The real formats still load."""

from __future__ import annotations

import hashlib
import os
import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from harness.benchmarks import nb201
from harness.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from harness.cli import cli
from harness.data import load_dataset
from harness.errors import HarnessError
from harness.safeload import load_dataset_pickle

from tests.nb201kit import ARCH11
from tests.test_data import write_cifar10, write_cifar100, write_imagenet16


class OpensMarker:
    """Unpickling calls open(marker, 'w'): the file appears if the payload runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class SystemMarker:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


PAYLOADS = [OpensMarker, SystemMarker]


def _one_line_error(fn, *args, contains=(), **kw) -> str:
    with pytest.raises(HarnessError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    for part in contains:
        assert part in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------
# dataset pickles


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("dataset, writer, victim", [
    ("cifar10", write_cifar10, "cifar-10-batches-py/data_batch_3"),
    ("cifar100", write_cifar100, "cifar-100-python/train"),
    ("imagenet16-120", write_imagenet16, "ImageNet16/train_data_batch_2"),
])
def test_every_dataset_reader_refuses_a_malicious_pickle(tmp_path, dataset, writer, victim, payload):
    root = tmp_path / "data"
    writer(root)
    marker = tmp_path / "PWNED"
    target = root / victim
    with open(target, "rb") as fh:  # a real batch (read with the plain unpickler: we wrote it) ...
        real = pickle.load(fh, encoding="latin1")
    real["extra"] = payload(marker)  # ... with a payload hidden among the arrays
    target.write_bytes(pickle.dumps(real))
    msg = _one_line_error(load_dataset, dataset, root, contains=(str(target), "nothing from the file was run"))
    assert (".open" if payload is OpensMarker else ".system") in msg  # io.open / posix.system, named
    assert not marker.exists()


def test_real_formats_still_load(tmp_path):
    for dataset, writer in (("cifar10", write_cifar10), ("cifar100", write_cifar100),
                            ("imagenet16-120", write_imagenet16)):
        writer(tmp_path / dataset)
        data = load_dataset(dataset, tmp_path / dataset)
        assert data.train_x.dtype == torch.uint8 and len(data.train_x) > 0


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_arrays_bytes_and_containers_load_at_every_protocol(tmp_path, protocol):
    """Protocol 2 writes bytes through _codecs.encode, protocol 5 arrays through _frombuffer; the
    Python 2 CIFAR files use numpy's _reconstruct; all are admitted, nothing else is needed."""
    obj = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "mean": np.zeros(3), "labels": [1, 2, 3],
           b"raw": b"\x00\xff", "name": "batch 1", "t": (1, 2.5, None), "s": {1, 2}}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = load_dataset_pickle(path)
    assert got["labels"] == [1, 2, 3] and got[b"raw"] == b"\x00\xff" and got["s"] == {1, 2}
    np.testing.assert_array_equal(got["data"], obj["data"])


def test_numpy_object_arrays_cannot_smuggle_a_payload(tmp_path):
    marker = tmp_path / "PWNED"
    arr = np.empty(1, dtype=object)
    arr[0] = OpensMarker(marker)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": arr}))
    _one_line_error(load_dataset_pickle, path, contains=(".open",))
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# official NAS-Bench-201 files


def _official_with(official: Path, tmp_path: Path, extra) -> Path:
    data = torch.load(official, map_location="cpu", weights_only=True)
    data["extra"] = extra
    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"  # the release's name proves nothing
    torch.save(data, path)
    return path


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_malicious_pth_is_refused_with_its_checksum_and_the_flag(official_file, tmp_path, payload):
    nb201.clear_cache()
    marker = tmp_path / "PWNED"
    path = _official_with(official_file, tmp_path, payload(marker))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    _one_line_error(nb201.open_benchmark, path, contains=(str(path), sha, "--trust-benchmark-file",
                                                          "nothing from it was run"))
    assert not marker.exists()
    # the same through every command that opens benchmark files
    write_cifar10(tmp_path / "data")
    for args in (["benchmark", "query", "--benchmark", str(path), ARCH11],
                 ["benchmark", "convert", str(path), str(tmp_path / "out.csv")],
                 ["run", "--plugin", "darts", "--space", "nb201", "--dataset", "cifar10", "--benchmark", str(path),
                  "--data-dir", str(tmp_path / "data"), "--store", str(tmp_path / "r.sqlite")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and not marker.exists(), (args, result.output)
        assert sha in result.output and "--trust-benchmark-file" in result.output, result.output
    assert not (tmp_path / "out.csv").exists()


def test_official_format_loads_weights_only_and_records_it(official_file):  # noqa: F811
    nb201.clear_cache()
    bench = nb201.open_benchmark(official_file)
    assert bench.source.trust == nb201.TRUST_WEIGHTS_ONLY
    assert bench.source.release is None  # its MD5 does not end with a release's name suffix
    result = bench.query(ARCH11, "cifar10")
    assert result.to_dict()["source"]["trust"] == nb201.TRUST_WEIGHTS_ONLY


def test_trust_flag_unpickles_in_full_and_says_so(official_file, tmp_path):  # noqa: F811
    """A harmless object outside the weights-only set (a Fraction) stands in for what a trusted file
    may hold: refused by default, read with --trust-benchmark-file, and the record says which."""
    nb201.clear_cache()
    path = _official_with(official_file, tmp_path, Fraction(1, 3))
    _one_line_error(nb201.open_benchmark, path, contains=("fractions.Fraction", "--trust-benchmark-file"))
    bench = nb201.open_benchmark(path, trust=True)
    assert bench.source.trust == nb201.TRUST_USER
    result = CliRunner().invoke(cli, ["benchmark", "query", "--benchmark", str(path), "--trust-benchmark-file",
                                      "--json", ARCH11])
    assert result.exit_code == 0, result.output
    assert '"trust": "trusted by the user' in result.output


# ---------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_round_trip_with_random_states(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    state = {"epoch": 7, "model": {"w": torch.randn(3, 2), "b": torch.zeros(2)}, "curve": [0.5, 0.25],
             "config": {"method": "darts", "tau": None, "ok": True}, "rng": rng_state()}
    path = save_checkpoint(tmp_path / "ckpt" / "run-1.pt", state)
    expect_torch, expect_np = torch.rand(2), np.random.rand(2)
    torch.manual_seed(0)
    np.random.seed(0)
    back = load_checkpoint(path)
    assert back["epoch"] == 7 and back["curve"] == [0.5, 0.25] and back["config"]["tau"] is None
    torch.testing.assert_close(back["model"]["w"], state["model"]["w"])
    set_rng_state(back["rng"])
    torch.testing.assert_close(torch.rand(2), expect_torch)  # the random streams resume exactly
    np.testing.assert_array_equal(np.random.rand(2), expect_np)
    assert [p.name for p in path.parent.iterdir()] == ["run-1.pt"]  # no temporary left behind


def test_checkpoints_hold_plain_contents_only(tmp_path):
    _one_line_error(save_checkpoint, tmp_path / "c.pt", {"model": {"opt": Fraction(1, 2)}},
                    contains=("state['model']['opt']", "fractions.Fraction"))
    _one_line_error(save_checkpoint, tmp_path / "c.pt", {"a": np.zeros(2)}, contains=("numpy",))
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_malicious_checkpoint_is_refused(tmp_path, payload):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"epoch": 1, "model": payload(marker)}, path)
    _one_line_error(load_checkpoint, path, contains=(str(path), "nothing was run"))
    assert not marker.exists()
