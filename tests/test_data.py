"""harness.data: readers of the real on-disk formats (on small files written here), the real digits and
Fashion-MNIST, the DARTS search split, and the device-resident loader's batching and augmentation."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from harness.data import DATASETS, DeviceLoader, ImageData, load_dataset, search_split
from harness.errors import HarnessError

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"
rng = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------- writers


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _flat_chw(n: int, side: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 10) -> None:
    d = root / "cifar-10-batches-py"
    for i in range(1, 6):
        data = _flat_chw(per_batch, 32)
        if i == 1:
            data[0] = 0
            data[0, 1 * 1024 + 3 * 32 + 5] = 255  # channel 1 (green), row 3, column 5
        _dump(d / f"data_batch_{i}", {"batch_label": f"batch {i}", "data": data,
                                      "labels": [(i * 3 + k) % 10 for k in range(per_batch)]})
    _dump(d / "test_batch", {"data": _flat_chw(n_test, 32), "labels": list(range(n_test))})


def write_cifar100(root: Path) -> None:
    d = root / "cifar-100-python"
    data = _flat_chw(20, 32)
    data[7] = 0
    data[7, 2 * 1024 + 31 * 32 + 0] = 200  # channel 2, row 31, column 0
    # the real files were pickled by Python 2: bytes keys when read back
    _dump(d / "train", {b"data": data, b"fine_labels": [99 - k for k in range(20)],
                        b"coarse_labels": [0] * 20})
    _dump(d / "test", {b"data": _flat_chw(10, 32), b"fine_labels": list(range(10)), b"coarse_labels": [0] * 10})


def write_svhn(root: Path) -> None:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 20), ("test", 10)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10, 10 = digit 0
        if split == "train":
            x[..., 4] = 0
            x[6, 9, 2, 4] = 123  # row 6, column 9, channel 2 of image 4
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})


def write_imagenet16(root: Path, flat: bool = False) -> list[int]:
    d = root if flat else root / "ImageNet16"
    kept = []
    for i in range(1, 11):
        labels = [1, 120, 121, 1000, 60]  # 121 and 1000 are outside ImageNet16-120
        data = _flat_chw(len(labels), 16)
        if i == 1:
            data[1] = 0
            data[1, 0 * 256 + 15 * 16 + 2] = 77  # channel 0, row 15, column 2 of the label-120 image
        kept += [lab - 1 for lab in labels if lab <= 120]
        _dump(d / f"train_data_batch_{i}", {"data": data, "labels": labels, "mean": np.zeros(768)})
    _dump(d / "val_data", {"data": _flat_chw(4, 16), "labels": [3, 500, 120, 2]})
    return kept


def _idx(path: Path, arr: np.ndarray, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def write_fashion(d: Path, compress: bool = True) -> None:
    for split, n in (("train", 20), ("t10k", 10)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        if split == "train":
            x[2] = 0
            x[2, 27, 1] = 250  # row 27, column 1
        _idx(d / f"{split}-images-idx3-ubyte", x, compress)
        _idx(d / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8), compress)


def _check(data: ImageData, name: str, n_train: int, n_test: int) -> None:
    info = DATASETS[name]
    assert data.info is info
    for x, y, n in ((data.train_x, data.train_y, n_train), (data.test_x, data.test_y, n_test)):
        assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.device.type == "cpu"
        assert tuple(x.shape) == (n, info.channels, info.resolution, info.resolution)
        assert tuple(y.shape) == (n,)
        assert int(y.min()) >= 0 and int(y.max()) < info.num_classes


# ----------------------------------------------------------------------------------------- on-disk formats


def test_cifar10_pickles(tmp_path):
    write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path, download=False)
    _check(data, "cifar10", 20, 10)
    img = data.train_x[0]
    assert int(img[1, 3, 5]) == 255 and int(img.sum()) == 255  # CHW rows land in channel/row/column
    assert data.train_y[:4].tolist() == [3, 4, 5, 6]  # batch 1 first, labels in order
    assert data.train_y[16:].tolist() == [5, 6, 7, 8]  # batch 5 last
    assert data.test_y.tolist() == list(range(10))


def test_cifar100_pickles_bytes_keys_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    data = load_dataset("cifar100", tmp_path, download=False)
    _check(data, "cifar100", 20, 10)
    assert data.train_y.tolist() == [99 - k for k in range(20)]
    assert int(data.train_x[7, 2, 31, 0]) == 200 and int(data.train_x[7].sum()) == 200


def test_svhn_mat_label_10_is_0(tmp_path):
    write_svhn(tmp_path)
    data = load_dataset("svhn", tmp_path, download=False)
    _check(data, "svhn", 20, 10)
    assert data.train_y[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert int(data.train_x[4, 2, 6, 9]) == 123 and int(data.train_x[4].sum()) == 123  # HWCN -> NCHW


@pytest.mark.parametrize("flat", [False, True])
def test_imagenet16_filters_to_120_classes_zero_based(tmp_path, flat):
    kept = write_imagenet16(tmp_path, flat)
    data = load_dataset("imagenet16-120", tmp_path, download=False)
    _check(data, "imagenet16-120", 30, 3)
    assert data.train_y.tolist() == kept and kept[:3] == [0, 119, 59]
    assert data.test_y.tolist() == [2, 119, 1]
    assert int(data.train_x[1, 0, 15, 2]) == 77 and int(data.train_x[1].sum()) == 77


@pytest.mark.parametrize("layout", ["flat-gz", "torchvision-raw"])
def test_fashion_idx(tmp_path, layout):
    if layout == "flat-gz":
        write_fashion(tmp_path, compress=True)
    else:
        write_fashion(tmp_path / "FashionMNIST" / "raw", compress=False)
    data = load_dataset("fashion-mnist", tmp_path, download=False)
    _check(data, "fashion-mnist", 20, 10)
    assert data.train_y.tolist() == [k % 10 for k in range(20)]
    assert int(data.train_x[2, 0, 27, 1]) == 250 and int(data.train_x[2].sum()) == 250


# ------------------------------------------------------------------------------------------------ real data


def test_digits_read_without_sklearn_equal_load_digits():
    # the direct CSV reader (no scikit-learn import) gives exactly scikit-learn's own parse
    from sklearn.datasets import load_digits

    from harness.data import _digits_arrays

    images, y = _digits_arrays()
    ref = load_digits()
    assert images.shape == (1797, 8, 8)
    assert np.array_equal(images, ref.images) and np.array_equal(y, ref.target)


def test_digits_real_fixed_split():
    data = load_dataset("digits")
    _check(data, "digits", 1297, 500)
    assert int(data.train_x.max()) == 255
    again = load_dataset("digits")
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_y, data.test_y)
    assert set(data.test_y.tolist()) == set(range(10))
    x = data.train_x.double() / 255  # the documented constants are the training set's statistics
    assert abs(float(x.mean()) - data.info.mean[0]) < 1e-3 and abs(float(x.std()) - data.info.std[0]) < 1e-3


@pytest.fixture(scope="module")
def fashion() -> ImageData:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"../shared/data/fashion-mnist not present: {FASHION} holds the real Fashion-MNIST beside "
                    f"the checkout")
    return load_dataset("fashion-mnist", FASHION, download=False)


def test_fashion_real(fashion):
    _check(fashion, "fashion-mnist", 60000, 10000)
    assert torch.bincount(fashion.train_y).tolist() == [6000] * 10
    assert torch.bincount(fashion.test_y).tolist() == [1000] * 10
    x = fashion.train_x.double() / 255
    assert abs(float(x.mean()) - 0.2860) < 1e-3 and abs(float(x.std()) - 0.3530) < 1e-3


def test_fashion_default_location_is_shared(fashion):
    # conftest points $HARNESS_DATA_DIR at an empty tmp dir, so the default falls through to ../shared/data
    data = load_dataset("fashion-mnist", download=False)
    assert torch.equal(data.test_x, fashion.test_x)


# ------------------------------------------------------------------------------------------------- errors


def test_unknown_dataset_lists_choices():
    with pytest.raises(HarnessError) as err:
        load_dataset("cifar11")
    msg = str(err.value)
    assert "'cifar11'" in msg and all(name in msg for name in DATASETS) and "\n" not in msg


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "imagenet16-120", "fashion-mnist"])
def test_missing_files_without_download(tmp_path, name):
    empty = tmp_path / "empty"
    with pytest.raises(HarnessError) as err:
        load_dataset(name, empty, download=False)
    msg = str(err.value)
    assert str(empty) in msg and "--data-dir DIR" in msg and "not found" in msg and "\n" not in msg
    assert "download" not in msg.split("(or set")[1]  # no download was tried


def test_default_data_dir_is_harness_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "env"))
    write_cifar10(tmp_path / "env")
    assert load_dataset("cifar10", download=False).train_x.shape[0] == 20
    monkeypatch.delenv("HARNESS_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HarnessError, match="data/cifar-10-batches-py"):
        load_dataset("cifar10", download=False)


def _offline(*_a, **_k):
    raise URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("name,module,func", [
    ("cifar10", "cifar", "download_and_extract_archive"),
    ("cifar100", "cifar", "download_and_extract_archive"),
    ("svhn", "svhn", "download_url"),
    ("fashion-mnist", "mnist", "download_and_extract_archive"),
])
def test_download_failure_becomes_harness_error(tmp_path, monkeypatch, name, module, func):
    import importlib

    monkeypatch.setattr(importlib.import_module(f"torchvision.datasets.{module}"), func, _offline)
    with pytest.raises(HarnessError) as err:
        load_dataset(name, tmp_path / "dl", download=True)
    msg = str(err.value)
    assert "downloading it failed" in msg and "name resolution" in msg and "--data-dir DIR" in msg
    assert str(tmp_path / "dl") in msg and "\n" not in msg
    # the failed attempt left no folder behind (torchvision had made dl/ and, for Fashion-MNIST, FashionMNIST/raw)
    assert list(tmp_path.iterdir()) == []


def test_failed_download_keeps_what_was_there(tmp_path, monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("torchvision.datasets.mnist"), "download_and_extract_archive", _offline)
    (tmp_path / "dl" / "mine").mkdir(parents=True)  # an empty folder of the user's: not the attempt's to remove
    (tmp_path / "dl" / "notes.txt").write_text("x")
    with pytest.raises(HarnessError, match="downloading it failed"):
        load_dataset("fashion-mnist", tmp_path / "dl", download=True)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["mine", "notes.txt"]


def test_imagenet16_has_no_download(tmp_path):
    with pytest.raises(HarnessError, match="fetched by hand.*cannot be downloaded automatically"):
        load_dataset("imagenet16-120", tmp_path, download=True)


def test_corrupt_pickle(tmp_path):
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"\x80\x04this is not a pickle")
    with pytest.raises(HarnessError, match=r"corrupt dataset file .*data_batch_3.*pickle"):
        load_dataset("cifar10", tmp_path, download=False)


def test_wrong_shape_pickle(tmp_path):
    write_cifar10(tmp_path)
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", {"data": np.zeros((3, 100), np.uint8),
                                                            "labels": [0, 1, 2]})
    with pytest.raises(HarnessError, match=r"test_batch.*N x 3072"):
        load_dataset("cifar10", tmp_path, download=False)


def test_corrupt_idx(tmp_path):
    write_fashion(tmp_path)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x63")  # header promises 99 labels, holds none
    with pytest.raises(HarnessError, match="corrupt dataset file .*t10k-labels"):
        load_dataset("fashion-mnist", tmp_path, download=False)


# ----------------------------------------------------------------------------------------------- splitting


def test_search_split_darts_halves_and_cap():
    data = load_dataset("digits")
    (wx, wy), (ax, ay) = search_split(data)
    assert wx.shape[0] == 648 and ax.shape[0] == 649
    assert torch.equal(wx, data.train_x[:648]) and torch.equal(ay, data.train_y[648:])
    (wx, wy), (ax, ay) = search_split(data, 0.5, max_images=100)
    assert (wx.shape[0], ax.shape[0]) == (50, 50)
    assert torch.equal(wx, data.train_x[:50]) and torch.equal(ax, data.train_x[648:698])
    (wx2, _), (ax2, _) = search_split(data, 0.5, max_images=100)
    assert torch.equal(wx, wx2) and torch.equal(ax, ax2)
    (wx, _), (ax, _) = search_split(data, 0.8, max_images=101)
    assert (wx.shape[0], ax.shape[0]) == (80, 21)
    (wx, _), (ax, _) = search_split(data, 0.5, max_images=10**6)
    assert wx.shape[0] + ax.shape[0] == 1297
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(HarnessError, match="portion"):
            search_split(data, bad)


# ---------------------------------------------------------------------------------------------- the loader


def _plain(side: int, channels: int = 1, **kw):
    """An info whose normalisation is x/255, so outputs * 255 are the raw pixels."""
    base = DATASETS["digits"] if channels == 1 else DATASETS["cifar10"]
    return dataclasses.replace(base, resolution=side, mean=(0.0,) * channels, std=(1.0,) * channels, **kw)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_loader_eval_in_order_normalised():
    data = load_dataset("digits")
    loader = DeviceLoader(data.train_x, data.train_y, data.info, 100, "cpu", train=False)
    assert len(loader) == 13  # 1297 / 100 rounded up: the last batch is short
    xs, ys = zip(*loader)
    assert xs[0].dtype == torch.float32 and ys[0].dtype == torch.int64
    assert tuple(xs[0].shape) == (100, 1, 8, 8) and xs[-1].shape[0] == 97
    x = torch.cat(xs)
    assert torch.equal(torch.cat(ys), data.train_y)
    assert abs(float(x.mean())) < 2e-3 and abs(float(x.std()) - 1) < 2e-3
    expect = (data.train_x[:100].float() / 255 - data.info.mean[0]) / data.info.std[0]
    assert torch.allclose(xs[0], expect, atol=1e-5)
    cifar = DATASETS["cifar10"]  # per-channel constants
    img = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    out, _ = next(iter(DeviceLoader(img, torch.zeros(2, dtype=torch.long), cifar, 2, "cpu", train=False)))
    for c in range(3):
        assert torch.allclose(out[:, c], torch.tensor((128 / 255 - cifar.mean[c]) / cifar.std[c]), atol=1e-5)


def test_loader_train_epochs_permute_and_len():
    x = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 8, 8).contiguous()
    y = torch.arange(100)
    info = _plain(8, crop_padding=0, flip=False)
    loader = DeviceLoader(x, y, info, 32, "cpu", train=True, generator=_gen(0))
    assert len(loader) == 3
    epoch1 = [b for b in loader]
    epoch2 = [b for b in loader]
    assert len(epoch1) == 3 and all(xb.shape == (32, 1, 8, 8) for xb, _ in epoch1)
    seen = torch.cat([yb for _, yb in epoch1])
    assert len(set(seen.tolist())) == 96  # a permutation, the last 4 dropped
    assert not torch.equal(seen, torch.cat([yb for _, yb in epoch2]))  # fresh permutation per epoch
    assert not torch.equal(seen, torch.arange(96))
    for xb, yb in epoch1:  # images stay with their labels
        assert torch.equal((xb[:, 0, 0, 0] * 255).round().long(), yb)
    capped = DeviceLoader(x, y, info, 32, "cpu", train=True, generator=_gen(0), max_steps=2)
    assert len(capped) == 2 and len(list(capped)) == 2
    keep_last = DeviceLoader(x, y, info, 32, "cpu", train=True, generator=_gen(0), drop_last=False)
    assert len(keep_last) == 4 and sum(b[1].shape[0] for b in keep_last) == 100
    assert len(DeviceLoader(x, y, info, 32, "cpu", train=False, max_steps=2)) == 2


def test_loader_seed_fixes_batches_and_augmentation():
    data = load_dataset("digits")

    def batches(seed):
        loader = DeviceLoader(data.train_x, data.train_y, data.info, 64, "cpu", train=True, cutout=4,
                              generator=_gen(seed), max_steps=3)
        return [b for _ in range(2) for b in loader] + [loader.sample()]

    a, b, c = batches(1), batches(1), batches(2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1]) and not torch.equal(a[0][0], c[0][0])
    torch.manual_seed(5)  # no generator: seeded once from torch's global RNG
    d1 = next(iter(DeviceLoader(data.train_x, data.train_y, data.info, 64, "cpu", train=True)))
    torch.manual_seed(5)
    d2 = next(iter(DeviceLoader(data.train_x, data.train_y, data.info, 64, "cpu", train=True)))
    assert torch.equal(d1[0], d2[0])


def _shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``img`` moved so that out[r, c] = img[r + dy, c + dx], zero outside."""
    h, w = img.shape[-2:]
    out = torch.zeros_like(img)
    r0, r1 = max(0, -dy), min(h, h - dy)
    c0, c1 = max(0, -dx), min(w, w - dx)
    out[..., r0:r1, c0:c1] = img[..., r0 + dy:r1 + dy, c0 + dx:c1 + dx]
    return out


def test_loader_random_crop_zero_pads_and_shifts():
    img = torch.arange(1, 65, dtype=torch.uint8).view(1, 1, 8, 8)  # every pixel distinct and non-zero
    x = img.expand(256, 1, 8, 8).contiguous()
    info = _plain(8, crop_padding=2, flip=False)
    xb, _ = next(iter(DeviceLoader(x, torch.zeros(256, dtype=torch.long), info, 256, "cpu", train=True,
                                   generator=_gen(0))))
    raw = (xb * 255).round().to(torch.uint8)
    assert raw.shape == (256, 1, 8, 8)
    offsets = set()
    for k in range(256):
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(raw[k], _shifted(img[0], dy, dx))]
        assert len(match) == 1, "each output is the image shifted by at most the padding, zero filled"
        offsets.add(match[0])
    assert len(offsets) == 25  # all 5 x 5 offsets occur


def test_loader_flip():
    img = torch.arange(1, 65, dtype=torch.uint8).view(1, 1, 8, 8)
    x = img.expand(64, 1, 8, 8).contiguous()
    y = torch.zeros(64, dtype=torch.long)
    flipping = DeviceLoader(x, y, _plain(8, crop_padding=0, flip=True), 64, "cpu", train=True, generator=_gen(0))
    raw = (next(iter(flipping))[0] * 255).round().to(torch.uint8)
    flipped = torch.tensor([torch.equal(r, img[0].flip(-1)) for r in raw])
    same = torch.tensor([torch.equal(r, img[0]) for r in raw])
    assert bool((flipped | same).all()) and 10 < int(flipped.sum()) < 54
    fixed = DeviceLoader(x, y, _plain(8, crop_padding=0, flip=False), 64, "cpu", train=True, generator=_gen(0))
    assert torch.equal((next(iter(fixed))[0] * 255).round().to(torch.uint8), x)
    rgb = torch.randint(0, 256, (1, 3, 8, 8), generator=_gen(3), dtype=torch.uint8).expand(64, 3, 8, 8)
    out = next(iter(DeviceLoader(rgb.contiguous(), y, _plain(8, 3, crop_padding=0, flip=True), 64, "cpu",
                                 train=True, generator=_gen(1))))[0]
    raw = (out * 255).round().to(torch.uint8)
    assert all(torch.equal(r, rgb[0]) or torch.equal(r, rgb[0].flip(-1)) for r in raw)  # channels intact


def test_loader_cutout_zeroes_one_square():
    x = torch.full((128, 1, 16, 16), 255, dtype=torch.uint8)
    info = _plain(16, crop_padding=0, flip=False)
    loader = DeviceLoader(x, torch.zeros(128, dtype=torch.long), info, 128, "cpu", train=True, cutout=6,
                          generator=_gen(0))
    xb, _ = next(iter(loader))
    full = 0
    for img in xb[:, 0]:
        zero = img == 0
        rows = zero.any(1).nonzero().view(-1)
        cols = zero.any(0).nonzero().view(-1)
        assert 3 <= len(rows) <= 6 and 3 <= len(cols) <= 6  # clipped at a border down to cutout // 2
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()
        assert int(zero.sum()) == len(rows) * len(cols)  # exactly a rectangle
        assert torch.allclose(img[~zero], torch.tensor(1.0))
        full += int(zero.sum()) == 36
    assert full > 30
    no_cut = DeviceLoader(x, torch.zeros(128, dtype=torch.long), info, 128, "cpu", train=True, generator=_gen(0))
    assert bool((next(iter(no_cut))[0] == 1).all())


def test_loader_sample():
    data = load_dataset("digits")
    loader = DeviceLoader(data.test_x, data.test_y, data.info, 64, "cpu", train=True, generator=_gen(0))
    xb, yb = loader.sample()
    assert xb.shape == (64, 1, 8, 8) and yb.shape == (64,)
    assert not torch.equal(loader.sample()[1], yb)
    plain = DeviceLoader(data.test_x, data.test_y, data.info, 64, "cpu", train=False, generator=_gen(0))
    xs, ys = plain.sample()
    first = {tuple(v) for v in data.test_x.view(500, -1).tolist()}
    assert len(ys) == 64 and all(tuple(((r * data.info.std[0] + data.info.mean[0]) * 255).round().long().tolist())
                                 in first for r in xs.view(64, -1))


def test_loader_bad_inputs():
    data = load_dataset("digits")
    with pytest.raises(HarnessError, match="batch size 2000 is larger than the 1297"):
        DeviceLoader(data.train_x, data.train_y, data.info, 2000, "cpu", train=True)
    with pytest.raises(HarnessError, match="do not match dataset 'cifar10'"):
        DeviceLoader(data.train_x, data.train_y, DATASETS["cifar10"], 64, "cpu", train=True)
    with pytest.raises(HarnessError, match="uint8"):
        DeviceLoader(data.train_x.float(), data.train_y, data.info, 64, "cpu", train=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_cuda_no_host_sync_per_batch():
    data = load_dataset("digits")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    loader = DeviceLoader(data.train_x, data.train_y, data.info, 64, dev, train=True, cutout=4, generator=gen)
    ev = DeviceLoader(data.test_x, data.test_y, data.info, 64, dev, train=False)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = [b for b in loader] + [loader.sample()] + [b for b in ev]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(xb.is_cuda and yb.is_cuda for xb, yb in out)
    cpu_gen = DeviceLoader(data.train_x, data.train_y, data.info, 64, dev, train=True, generator=_gen(0))
    assert next(iter(cpu_gen))[0].is_cuda
