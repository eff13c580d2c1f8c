"""Datasets on disk -> uint8 tensors -> batches resident on the device.

Three pieces:

* :data:`DATASETS` / :class:`DatasetInfo`: what each dataset is (shape, classes, normalisation constants,
  default augmentation). The constants are the reference implementations' (``../shared/SPEC-FACTS.md``).
* :func:`load_dataset`: reads the real on-disk formats directly (CIFAR pickles, SVHN ``.mat``, NAS-Bench-201's
  ImageNet16 pickles, Fashion-MNIST IDX files, scikit-learn's bundled digits) into uint8 ``N x C x H x W``
  CPU tensors. torchvision's dataset classes are used only to *download* missing files (when allowed and the
  network answers); reading is done here because their md5 check rejects anything but the official archives.
* :class:`DeviceLoader`: the whole uint8 set moved to the device once; each batch is gathered, randomly
  cropped, flipped, normalised and cut out with a fixed number of batched kernels (no per-image Python loop,
  no host-device synchronisation), all randomness from one ``torch.Generator``.

:func:`search_split` makes the DARTS-style search split (first part of the training set for the weights, the
rest for the architecture).
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import HarnessError
from harness.safeload import load_dataset_pickle

__all__ = ["DATASETS", "DatasetInfo", "DeviceLoader", "ImageData", "load_dataset", "search_split"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the harness needs to know about a dataset; the augmentation fields are its training defaults."""

    name: str
    channels: int
    resolution: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int  # random crop back to `resolution` after zero-padding this many pixels per side
    flip: bool  # random horizontal flip (p = 0.5)
    description: str


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "cifar10", 3, 32, 10,
            # DARTS cnn/utils.py (SPEC-FACTS §2.6); NAS-Bench-201's own training used slightly different ones.
            mean=(0.49139968, 0.48215827, 0.44653124), std=(0.24703233, 0.24348505, 0.26158768),
            crop_padding=4, flip=True,
            description="CIFAR-10: 50,000 train / 10,000 test, 32x32 RGB, 10 classes "
                        "(<data_dir>/cifar-10-batches-py, python pickles)"),
        DatasetInfo(
            "cifar100", 3, 32, 100,
            mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),  # RobustDARTS src/utils.py (§1.6)
            crop_padding=4, flip=True,
            description="CIFAR-100: 50,000 train / 10,000 test, 32x32 RGB, 100 fine classes "
                        "(<data_dir>/cifar-100-python, python pickles)"),
        DatasetInfo(
            "svhn", 3, 32, 10,
            mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),  # RobustDARTS src/utils.py (§1.6)
            # RobustDARTS and darts-pt train SVHN with crop 32 pad 4 *and* a random horizontal flip; kept here
            # so S1-S4 SVHN numbers follow the protocol the papers report, although digits are not mirror
            # symmetric. A run that wants no flip can build a DatasetInfo with dataclasses.replace(flip=False).
            crop_padding=4, flip=True,
            description="SVHN: split 'train' 73,257 / 'test' 26,032 ('extra' unused), 32x32 RGB, 10 classes, "
                        "label 10 -> 0 (<data_dir>/train_32x32.mat, test_32x32.mat)"),
        DatasetInfo(
            "imagenet16-120", 3, 16, 120,
            # xautodl get_dataset_with_transform.py (SPEC-FACTS §3.4)
            mean=(122.68 / 255, 116.66 / 255, 104.01 / 255), std=(63.22 / 255, 61.26 / 255, 65.09 / 255),
            crop_padding=2, flip=True,
            description="ImageNet16-120 (NAS-Bench-201): the first 120 classes of 16x16 down-sampled ImageNet, "
                        "151,700 train / 6,000 val-as-test (<data_dir>/ImageNet16/train_data_batch_1..10, "
                        "val_data)"),
        DatasetInfo(
            "fashion-mnist", 1, 28, 10,
            # computed on the 60,000 training images: mean 0.28604, std 0.35302 (population std over pixels)
            mean=(0.2860,), std=(0.3530,),
            # 4/32 of the side is 3.5 px at 28x28; padding 4 (rounded up) is also what public Fashion-MNIST
            # training code commonly uses. Clothes are roughly left-right symmetric, so flip is on.
            crop_padding=4, flip=True,
            description="Fashion-MNIST (Zalando): 60,000 train / 10,000 test, 28x28 grey, 10 classes "
                        "(IDX files, optionally .gz)"),
        DatasetInfo(
            "digits", 1, 8, 10,
            # computed on the 1,297 training images after scaling 0..16 -> 0..255: mean 0.30561, std 0.37560
            mean=(0.3056,), std=(0.3756,),
            # 4 px per 32 scaled to 8x8 gives 1; no flip: digits are not mirror symmetric.
            crop_padding=1, flip=False,
            description="scikit-learn digits: 1,797 8x8 grey images (0..16 scaled to 0..255), 10 classes; "
                        "fixed split from numpy RandomState(0).permutation: first 1,297 train, last 500 test"),
    )
}

DIGITS_TRAIN = 1297  # digits split: permutation(RandomState(0)), [:1297] train, [1297:] test (500 images)


@dataclass
class ImageData:
    """A dataset in memory: uint8 ``N x C x H x W`` images and int64 labels, on the CPU."""

    info: DatasetInfo
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor

    def __repr__(self) -> str:
        return (f"ImageData({self.info.name!r}, train {tuple(self.train_x.shape)}, "
                f"test {tuple(self.test_x.shape)}, {self.info.num_classes} classes)")


# ----------------------------------------------------------------------------------------------------------
# locating files


def _base_dir(data_dir: str | Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env).expanduser() if env else Path("data")


def _oneline(text: object) -> str:
    return " ".join(str(text).split())


def _not_found(name: str, searched: list[Path], expected: str, hint: str, note: str | None) -> HarnessError:
    where = ", ".join(str(p) for p in searched)
    msg = (f"dataset {name!r} not found: looked in {where} for {expected}; pass --data-dir DIR pointing at "
           f"{hint} (or set $HARNESS_DATA_DIR)")
    if note is not None:
        msg += f"; {note}"
    return HarnessError(_oneline(msg))


def _corrupt(path: Path, why: object) -> HarnessError:
    return HarnessError(_oneline(f"corrupt dataset file {path}: {why}; delete it and fetch the dataset again, "
                                 f"or pass --data-dir DIR pointing at intact files"))


def _try_download(name: str, fetch, watch: Path | None = None) -> str | None:
    """Run a torchvision download; return None on success or a one-line description of why it failed.

    A failed download leaves no empty folder behind: the folders it created (``watch``, the data directory,
    and those above it that did not exist; new empty folders inside ``watch``) are removed again. Files
    are never removed, nor anything that existed before the attempt."""
    created: list[Path] = []
    before: set[str] = set()
    if watch is not None:
        p = watch.absolute()
        while not p.exists() and p != p.parent:
            created.append(p)
            p = p.parent
        before = set(os.listdir(watch)) if watch.is_dir() else set()
    try:
        fetch()
    except Exception as exc:  # network errors come as URLError/OSError, torchvision wraps some in RuntimeError
        if watch is not None:
            _remove_empty(watch, before, created)
        return f"{type(exc).__name__}: {_oneline(exc)}"[:300]
    return None


def _remove_empty(watch: Path, before: set[str], created: list[Path]) -> None:
    """Remove what a failed download made that holds no file: new empty folder trees inside ``watch``,
    then ``watch`` and the folders above it in ``created`` (innermost first) where they are empty."""
    if watch.is_dir():
        for entry in set(os.listdir(watch)) - before:
            path = watch / entry
            if path.is_dir() and not path.is_symlink() and not any(f.is_file() for f in path.rglob("*")):
                shutil.rmtree(path, ignore_errors=True)
    for folder in created:
        try:
            folder.rmdir()  # only if empty
        except OSError:
            break


def _find_dir(candidates: list[Path], files: list[str], gz: bool) -> Path | None:
    for d in candidates:
        if all((d / f).is_file() or (gz and (d / (f + ".gz")).is_file()) for f in files):
            return d
    return None


def _locate(name: str, candidates: list[Path], files: list[str], expected: str, hint: str, *,
            download: bool, fetch=None, gz: bool = False, watch: Path | None = None) -> Path:
    """The first candidate directory holding all ``files`` (or their ``.gz`` when ``gz``); downloads once
    via ``fetch`` when allowed (into ``watch``, the data directory: a failed download removes the empty
    folders it made there)."""
    found = _find_dir(candidates, files, gz)
    if found is not None:
        return found
    note = None
    if download and fetch is not None:
        error = _try_download(name, fetch, watch)
        if error is None:
            found = _find_dir(candidates, files, gz)
            if found is not None:
                return found
            error = "it finished but the expected files are still missing"
        note = f"downloading it failed: {error}"
    elif download:
        note = "it cannot be downloaded automatically"
    raise _not_found(name, candidates, expected, hint, note)


# ----------------------------------------------------------------------------------------------------------
# readers of the on-disk formats


def _unpickle(path: Path) -> dict:
    # dataset pickles come from the internet or a shared drive: only arrays and containers are resolved,
    # any other global is refused before it runs (harness.safeload)
    try:
        obj = load_dataset_pickle(path, encoding="latin1")
    except HarnessError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... all mean the same to the user
        raise _corrupt(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise _corrupt(path, f"expected a dict, got {type(obj).__name__}")
    # encoding='latin1' keeps str keys as str; files pickled from Python 2 with bytes keys are accepted too
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _pickle_batch(path: Path, label_key: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise _corrupt(path, f"missing key {key!r} (has {sorted(map(str, d))})")
    try:
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise _corrupt(path, exc) from None
    per_image = 3 * side * side
    if data.ndim != 2 or data.shape[1] != per_image or data.shape[0] != labels.shape[0]:
        raise _corrupt(path, f"expected data of shape N x {per_image} and N labels, got data "
                             f"{tuple(data.shape)} and {labels.shape[0]} labels")
    return data.reshape(-1, 3, side, side), labels  # rows are CHW, channel-major as in CIFAR


def _check_labels(path: Path, labels: np.ndarray, num_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _corrupt(path, f"labels outside 0..{num_classes - 1} (min {labels.min()}, max {labels.max()})")


def _load_cifar(name: str, data_dir, download: bool) -> tuple[np.ndarray, ...]:
    base = _base_dir(data_dir)
    if name == "cifar10":
        sub, train_files, test_files, key = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], \
            ["test_batch"], "labels"
        expected = "data_batch_1..5 and test_batch"
    else:
        sub, train_files, test_files, key = "cifar-100-python", ["train"], ["test"], "fine_labels"
        expected = "train and test"

    def fetch():
        import torchvision.datasets as tvd

        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        base.mkdir(parents=True, exist_ok=True)
        cls(root=str(base), train=True, download=True)

    d = _locate(name, [base / sub], train_files + test_files, expected,
                f"the directory that holds {sub}/", download=download, fetch=fetch, watch=base)
    num_classes = DATASETS[name].num_classes
    out = []
    for files in (train_files, test_files):
        parts = [_pickle_batch(d / f, key, 32) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        _check_labels(d / files[0], y, num_classes)
        out += [x, y]
    return tuple(out)


def _load_svhn(data_dir, download: bool) -> tuple[np.ndarray, ...]:
    import scipy.io

    base = _base_dir(data_dir)
    files = ["train_32x32.mat", "test_32x32.mat"]

    def fetch():
        import torchvision.datasets as tvd

        base.mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            if not (base / f"{split}_32x32.mat").is_file():
                tvd.SVHN(root=str(base), split=split, download=True)

    d = _locate("svhn", [base, base / "svhn"], files, " and ".join(files), "the directory that holds them",
                download=download, fetch=fetch, watch=base)
    out = []
    for f in files:
        path = d / f
        try:
            mat = scipy.io.loadmat(str(path))
        except Exception as exc:
            raise _corrupt(path, f"not a readable .mat file ({type(exc).__name__}: {exc})") from None
        if "X" not in mat or "y" not in mat:
            raise _corrupt(path, "missing variable 'X' or 'y'")
        x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
            raise _corrupt(path, f"expected X of shape 32 x 32 x 3 x N and N labels, got X {x.shape} "
                                 f"and {y.shape[0]} labels")
        if y.size and (y.min() < 1 or y.max() > 10):
            raise _corrupt(path, f"labels outside 1..10 (min {y.min()}, max {y.max()})")
        x = np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(3, 2, 0, 1))  # HWCN -> NCHW
        out += [x, y % 10]  # SVHN stores digit 0 as label 10
    return tuple(out)


def _load_imagenet16(data_dir, download: bool) -> tuple[np.ndarray, ...]:
    base = _base_dir(data_dir)
    train_files = [f"train_data_batch_{i}" for i in range(1, 11)]
    files = train_files + ["val_data"]
    d = _locate("imagenet16-120", [base / "ImageNet16", base], files, "train_data_batch_1..10 and val_data",
                "the directory that holds ImageNet16/ (NAS-Bench-201's down-sampled ImageNet, which must be "
                "fetched by hand)", download=download, fetch=None)
    out = []
    for group in (train_files, ["val_data"]):
        xs, ys = [], []
        for f in group:
            x, y = _pickle_batch(d / f, "labels", 16)
            if y.size and (y.min() < 1 or y.max() > 1000):
                raise _corrupt(d / f, f"labels outside 1..1000 (min {y.min()}, max {y.max()})")
            keep = y <= 120  # NAS-Bench-201's ImageNet16-120: classes 1..120 of the 1-based labels
            xs.append(x[keep])
            ys.append(y[keep] - 1)
        out += [np.concatenate(xs), np.concatenate(ys)]
    return tuple(out)


_IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte"]


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    if not path.is_file():
        path = path.with_name(path.name + ".gz")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise _corrupt(path, f"cannot read ({type(exc).__name__}: {exc})") from None
    if len(raw) < 4 + 4 * ndim:
        raise _corrupt(path, "shorter than an IDX header")
    zero, dtype_code, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or dims != ndim:
        raise _corrupt(path, f"not an unsigned-byte IDX file with {ndim} dimensions "
                             f"(magic {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise _corrupt(path, f"header says shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def _load_fashion(data_dir, download: bool) -> tuple[np.ndarray, ...]:
    base = _base_dir(data_dir)
    if data_dir is not None:
        candidates = [base, base / "fashion-mnist", base / "FashionMNIST" / "raw"]
    else:
        repo = Path(__file__).resolve().parents[1]
        candidates = [base / "fashion-mnist", base / "FashionMNIST" / "raw",
                      repo.parent / "shared" / "data" / "fashion-mnist", Path("/usr/share/datasets/fashion-mnist")]

    def fetch():
        import torchvision.datasets as tvd

        base.mkdir(parents=True, exist_ok=True)
        tvd.FashionMNIST(root=str(base), train=True, download=True)  # -> base/FashionMNIST/raw

    d = _locate("fashion-mnist", candidates, _IDX_FILES, "the IDX files " + ", ".join(_IDX_FILES) + " (or .gz)",
                "the directory that holds them", download=download, fetch=fetch, gz=True, watch=base)
    out = []
    for split in ("train", "t10k"):
        x = _read_idx(d / f"{split}-images-idx3-ubyte", 3)
        y = _read_idx(d / f"{split}-labels-idx1-ubyte", 1).astype(np.int64)
        if x.shape[1:] != (28, 28) or x.shape[0] != y.shape[0]:
            raise _corrupt(d / f"{split}-images-idx3-ubyte", f"expected N x 28 x 28 images and N labels, got "
                                                             f"{x.shape} and {y.shape[0]} labels")
        _check_labels(d / f"{split}-labels-idx1-ubyte", y, 10)
        out += [x[:, None], y]
    return tuple(out)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (images N x 8 x 8 in 0..16, labels), read from the CSV that scikit-learn
    ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixels then the label per row, what
    ``load_digits`` parses) without importing scikit-learn, whose import costs more than a smoke run's
    search (1.4 s here). Falls back to ``load_digits`` if the file is not where it is expected."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise HarnessError("dataset 'digits' needs scikit-learn (pip install scikit-learn)")
    for root in spec.submodule_search_locations or []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            if data.ndim == 2 and data.shape[1] == 65:
                return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target.astype(np.int64)


def _load_digits() -> tuple[np.ndarray, ...]:
    images, y = _digits_arrays()
    x = np.rint(images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    perm = np.random.RandomState(0).permutation(len(y))
    tr, te = perm[:DIGITS_TRAIN], perm[DIGITS_TRAIN:]
    return x[tr], y[tr], x[te], y[te]


# the built-in datasets' loaders, registered by the core plugin (harness.builtin) with DATASETS' infos
BUILTIN_LOADERS = {
    "cifar10": lambda data_dir, download: _load_cifar("cifar10", data_dir, download),
    "cifar100": lambda data_dir, download: _load_cifar("cifar100", data_dir, download),
    "svhn": _load_svhn,
    "imagenet16-120": _load_imagenet16,
    "fashion-mnist": _load_fashion,
    "digits": lambda data_dir, download: _load_digits(),
}


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True,
                 registry=None) -> ImageData:
    """Read dataset ``name`` (any registered one: ``harness_register_datasets``) from ``data_dir`` (default
    ``$HARNESS_DATA_DIR``, else ``./data``).

    The built-in loaders download missing files with torchvision when ``download`` is true and the dataset
    has a torchvision downloader (CIFAR-10/100, SVHN, Fashion-MNIST); any failure becomes a one-line
    :class:`HarnessError`. What a loader returns is checked against its ``DatasetInfo`` (a plugin's
    mistake is named, not a shape error in the first batch).
    """
    if registry is None:
        from harness.plugins import load_registry

        registry = load_registry()
    entry = registry.dataset(name)
    arrays = entry.loader(data_dir, download)
    # np.require copies only where needed (e.g. read-only views of an IDX file's bytes)
    tx, ty, vx, vy = (a if isinstance(a, torch.Tensor) else torch.from_numpy(np.require(a, requirements=["C", "W"]))
                      for a in arrays)
    _check_arrays(entry, tx, ty, vx, vy)
    return ImageData(entry.info, tx, ty, vx, vy)


def _check_arrays(entry, tx, ty, vx, vy) -> None:
    info = entry.info
    want = (info.channels, info.resolution, info.resolution)
    for split, x, y in (("train", tx, ty), ("test", vx, vy)):
        where = f"plugin {entry.plugin!r}: dataset {info.name!r}'s loader gave {split}"
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise HarnessError(f"{where} images {x.dtype} {tuple(x.shape)}, not uint8 N x {' x '.join(map(str, want))}")
        if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
            raise HarnessError(f"{where} labels {y.dtype} {tuple(y.shape)}, not {x.shape[0]} integer labels")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
            raise HarnessError(f"{where} labels outside [0, {info.num_classes})")


# ----------------------------------------------------------------------------------------------------------
# search split


def search_split(data: ImageData, portion: float = 0.5, max_images: int | None = None
                 ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """DARTS-style search split of the *training* set by index: ``((w_x, w_y), (a_x, a_y))``.

    The first ``floor(portion * N)`` training images train the weights, the rest the architecture, as in
    quark0/darts ``train_search.py`` and darts-pt. NAS-Bench-201/xautodl's interleaved ``cifar-split.txt``
    (and its use of half the *test* set for CIFAR-100/ImageNet16) is deliberately not used, so every dataset
    is split the same way and the test set is never seen during search.

    ``max_images`` caps the total: ``floor(portion * max_images)`` images from the front of the weight half
    and the remainder from the front of the architecture half (each at most its half). Deterministic; the
    tensors returned are views of ``data``'s.
    """
    n = int(data.train_x.shape[0])
    if not 0.0 < portion < 1.0:
        raise HarnessError(f"train portion {portion!r} must lie strictly between 0 and 1 "
                           f"(0.5 = the DARTS split of the training set into two halves)")
    split = int(np.floor(portion * n))
    if split == 0 or split == n:
        raise HarnessError(f"train portion {portion} of {n} training images leaves one side of the search "
                           f"split empty; use a portion nearer 0.5 or more images")
    n_w, n_a = split, n - split
    if max_images is not None:
        if max_images < 2:
            raise HarnessError(f"max_images {max_images!r} must be at least 2 (one image for each side of the "
                               f"search split)")
        if max_images < n:
            k_w = min(n_w, max(1, int(np.floor(portion * max_images))))
            k_a = min(n_a, max(1, max_images - k_w))
            n_w, n_a = k_w, k_a
    x, y = data.train_x, data.train_y
    return (x[:n_w], y[:n_w]), (x[split:split + n_a], y[split:split + n_a])


# ----------------------------------------------------------------------------------------------------------
# device-resident loader


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cpu":
        return True
    ia = a.index if a.index is not None else torch.cuda.current_device() if a.type == "cuda" else 0
    ib = b.index if b.index is not None else torch.cuda.current_device() if b.type == "cuda" else 0
    return ia == ib


class DeviceLoader:
    """Batches drawn from tensors resident on ``device``; augmentation (random crop with zero padding,
    horizontal flip, cutout) done on the device, batched, no per-image Python loop and no host-device sync
    per batch.

    ``train=True``: every epoch a fresh random permutation (``torch.randperm`` with ``generator``), batches of
    exactly ``batch_size`` (``drop_last``), each image zero-padded by ``info.crop_padding`` and cropped at a
    random offset, flipped with probability 0.5 when ``info.flip``, normalised, then cut out (DARTS's
    ``Cutout``: a ``cutout x cutout`` square, ``cutout // 2`` each side of a uniform random centre, clipped at
    the borders, set to 0 after normalisation) when ``cutout > 0``. ``train=False``: the images in order,
    normalised only, the last batch possibly short (``drop_last`` is ignored).

    All randomness comes from ``generator``; a generator on ``device`` is the fast path. Without one, a
    generator on ``device`` is seeded once from torch's global RNG, so ``torch.manual_seed`` fixes it.
    ``max_steps`` caps the batches per epoch (each epoch still draws a new permutation).
    """

    def __init__(self, x_uint8: Tensor, y: Tensor, info: DatasetInfo, batch_size: int, device, *, train: bool,
                 cutout: int = 0, generator: torch.Generator | None = None, drop_last: bool = True,
                 max_steps: int | None = None):
        if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
            raise HarnessError(f"DeviceLoader needs uint8 images of shape N x C x H x W, got {x_uint8.dtype} "
                               f"{tuple(x_uint8.shape)}")
        n = int(x_uint8.shape[0])
        if int(y.shape[0]) != n:
            raise HarnessError(f"DeviceLoader got {n} images but {int(y.shape[0])} labels")
        if tuple(x_uint8.shape[1:]) != (info.channels, info.resolution, info.resolution):
            raise HarnessError(f"images of shape {tuple(x_uint8.shape[1:])} do not match dataset {info.name!r} "
                               f"({info.channels} x {info.resolution} x {info.resolution})")
        if batch_size < 1:
            raise HarnessError(f"batch size {batch_size} must be at least 1")
        if n == 0:
            raise HarnessError(f"no images to load for dataset {info.name!r}; use more training images")
        if cutout < 0:
            raise HarnessError(f"cutout {cutout} must be >= 0 (0 turns cutout off)")
        if max_steps is not None and max_steps < 1:
            raise HarnessError(f"max_steps {max_steps} must be at least 1 (or unset for full epochs)")
        self.device = torch.device(device)
        self.info = info
        self.n = n
        self.batch_size = batch_size
        self.train = train
        self.cutout = int(cutout) if train else 0
        self.drop_last = bool(drop_last) if train else False
        self.max_steps = max_steps
        if self.drop_last and n < batch_size:
            raise HarnessError(f"batch size {batch_size} is larger than the {n} images of this {info.name!r} "
                               f"split, so no full batch exists; lower the batch size or use more images")
        pad = info.crop_padding if train else 0
        self.pad = pad
        x = x_uint8.to(self.device)
        # padding once here lets each batch be one gather from the padded set (select + crop + flip together)
        self.x = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
        self.y = y.to(self.device, dtype=torch.long)
        c = info.channels
        std = torch.tensor(info.std, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        mean = torch.tensor(info.mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        self._scale = 1.0 / (255.0 * std)  # x_norm = x_uint8 * scale - shift
        self._neg_shift = -(mean / std)
        h, p = info.resolution, pad
        self._ar = torch.arange(h, device=self.device)
        self._rev = (h - 1) - 2 * self._ar  # added to a column index to mirror it
        self._chan = torch.arange(c, device=self.device).view(1, c, 1, 1)
        # per-batch random integers come from one uniform draw: (b, 5) columns = row offset, column offset,
        # flip, cutout centre row, cutout centre column, each floor(u * count) capped at count - 1
        counts = [2 * p + 1, 2 * p + 1, 2 if info.flip else 1, h, h]
        self._rand_mul = torch.tensor(counts, dtype=torch.float32, device=self.device)
        self._rand_max = torch.tensor(counts, dtype=torch.long, device=self.device) - 1
        # row r lies in a cutout hole centred at c iff 0 <= r + L//2 - c < 2 * (L//2)
        self._ar_cut = self._ar + self.cutout // 2
        if generator is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
            generator = torch.Generator(device=self.device).manual_seed(seed)
        self.generator = generator
        self._gen_device = torch.device(generator.device)
        self._gen_local = _same_device(self._gen_device, self.device)

    # -- sizes
    def __len__(self) -> int:
        steps = self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)
        return min(steps, self.max_steps) if self.max_steps is not None else steps

    # -- randomness: always drawn on the generator's device, moved only when it differs
    def _randperm(self, n: int) -> Tensor:
        if self._gen_local:
            return torch.randperm(n, generator=self.generator, device=self.device)
        return torch.randperm(n, generator=self.generator, device=self._gen_device).to(self.device,
                                                                                        non_blocking=True)

    def _rand(self, shape: tuple[int, ...]) -> Tensor:
        if self._gen_local:
            return torch.rand(shape, generator=self.generator, device=self.device)
        return torch.rand(shape, generator=self.generator, device=self._gen_device).to(self.device,
                                                                                        non_blocking=True)

    # -- batches
    def _normalize(self, xb: Tensor) -> Tensor:
        return torch.addcmul(self._neg_shift, xb, self._scale)  # uint8 in, float32 out, one kernel

    def _augment(self, idx: Tensor) -> Tensor:
        """Gather images ``idx`` from the padded set with a random crop/flip each, normalise, cut out.

        A fixed handful of batched kernels whatever the batch size; nothing is read back to the host."""
        b, h = idx.shape[0], self.info.resolution
        r = torch.minimum((self._rand((b, 5)) * self._rand_mul).long(), self._rand_max)
        pos = r[:, :2, None] + self._ar  # (b, 2, h): source rows and columns in the padded images
        rows, cols = pos[:, 0], pos[:, 1]
        if self.info.flip:
            cols = torch.addcmul(cols, r[:, 2:3], self._rev)  # flip = 1 reverses the column order
        xb = self.x[idx.view(b, 1, 1, 1), self._chan, rows.view(b, 1, h, 1), cols.view(b, 1, 1, h)]
        out = self._normalize(xb)
        if self.cutout > 0:
            # DARTS's Cutout: rows/columns [centre - L//2, centre + L//2) clipped at the borders, set to 0
            # after normalisation; the clipping falls out of the comparison below
            d = self._ar_cut - r[:, 3:5, None]  # (b, 2, h)
            inside = (d >= 0) & (d < 2 * (self.cutout // 2))
            hole = inside[:, 0, :, None] & inside[:, 1, None, :]  # (b, h, h)
            out.masked_fill_(hole.unsqueeze(1), 0.0)
        return out

    def _batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self._augment(idx), self.y[idx]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        steps, bs = len(self), self.batch_size
        if not self.train:
            for i in range(steps):
                sl = slice(i * bs, min((i + 1) * bs, self.n))
                yield self._normalize(self.x[sl]), self.y[sl]
            return
        perm = self._randperm(self.n)
        for i in range(steps):
            yield self._batch(perm[i * bs:(i + 1) * bs])

    def sample(self) -> tuple[Tensor, Tensor]:
        """One batch of ``min(batch_size, N)`` distinct random images (DARTS: ``next(iter(valid_queue))``),
        augmented as the epoch batches are when ``train``."""
        idx = self._randperm(self.n)[: self.batch_size]
        if not self.train:
            return self._normalize(self.x[idx]), self.y[idx]
        return self._batch(idx)
