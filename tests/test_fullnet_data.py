"""fullnet.data and fullnet.download: readers on written fixture files, errors, subsets, offline
download errors and checksum verification. No test touches the network."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from fullnet import data as fd
from fullnet import download as fdl


# ------------------------------------------------------------------------------------------
# fixtures written in the official formats, independently of fullnet's writer
# ------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(fd.IDX_TYPES[type_code]).tobytes()


def _write_mnist_layout(root: Path, images: np.ndarray, labels: np.ndarray, split: str = "train",
                        folder: str = "MNIST/raw") -> Path:
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    image_stem, label_stem = fd.IDX_FILE_STEMS[split]
    (target / f"{image_stem}.gz").write_bytes(gzip.compress(_idx_bytes(images, 0x08)))
    (target / f"{label_stem}.gz").write_bytes(gzip.compress(_idx_bytes(labels, 0x08)))
    return target


def _tiny_mnist(count: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    images = generator.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = (np.arange(count) % 10).astype(np.uint8)
    return images, labels


def _write_cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """The cifar-10-batches-py format: a protocol-2 pickle of a dict with byte-string keys."""
    content = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": list(labels),
        b"data": images.reshape(len(labels), 3072),
        b"filenames": [f"image_{index}.png".encode() for index in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(content, protocol=2))


# ------------------------------------------------------------------------------------------
# IDX
# ------------------------------------------------------------------------------------------


def test_read_idx_gzipped_and_plain_fixture(tmp_path):
    images, labels = _tiny_mnist(7)
    plain = tmp_path / "images-idx3-ubyte"
    plain.write_bytes(_idx_bytes(images, 0x08))
    zipped = tmp_path / "labels-idx1-ubyte.gz"
    zipped.write_bytes(gzip.compress(_idx_bytes(labels, 0x08)))
    assert np.array_equal(fd.read_idx(plain), images)
    assert np.array_equal(fd.read_idx(zipped), labels)
    assert fd.read_idx(plain).dtype == np.uint8


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_round_trip(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = fd.write_idx(tmp_path / "x.idx.gz", array)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = fd.read_idx(path)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)


def test_corrupt_idx_files_name_the_file(tmp_path):
    images, _ = _tiny_mnist(4)
    payload = _idx_bytes(images, 0x08)
    truncated = tmp_path / "truncated-idx3-ubyte"
    truncated.write_bytes(payload[:-10])
    with pytest.raises(fd.CorruptDataError, match="truncated-idx3-ubyte.*truncated or damaged"):
        fd.read_idx(truncated)
    magic = tmp_path / "magic-idx3-ubyte"
    magic.write_bytes(b"\x01\x02" + payload[2:])
    with pytest.raises(fd.CorruptDataError, match="magic-idx3-ubyte.*bad magic"):
        fd.read_idx(magic)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(payload)[:-20])
    with pytest.raises(fd.CorruptDataError, match="broken.gz.*gzip"):
        fd.read_idx(broken)


def test_load_mnist_from_torchvision_layout_with_option_and_environment(tmp_path, monkeypatch):
    images, labels = _tiny_mnist(30)
    _write_mnist_layout(tmp_path, images, labels)
    raw = fd.load_dataset("mnist", "train", data_root=tmp_path)
    assert raw.inputs.shape == (30, 1, 28, 28) and raw.inputs.dtype == np.uint8
    assert np.array_equal(raw.inputs[:, 0], images) and np.array_equal(raw.labels, labels)
    monkeypatch.setenv(fd.DATA_ROOT_VARIABLE, str(tmp_path))
    assert np.array_equal(fd.load_dataset("mnist").labels, labels)


def test_missing_file_error_says_which_where_and_how(tmp_path):
    with pytest.raises(fd.MissingDataError) as caught:
        fd.load_dataset("mnist", "test", data_root=tmp_path)
    message = str(caught.value)
    assert "t10k-images-idx3-ubyte" in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "python -m fullnet download mnist" in message


def test_corrupt_dataset_file_error_says_how_to_get_it(tmp_path):
    images, labels = _tiny_mnist(30)
    folder = _write_mnist_layout(tmp_path, images, labels)
    _, label_stem = fd.IDX_FILE_STEMS["train"]
    (folder / f"{label_stem}.gz").write_bytes(gzip.compress(_idx_bytes(labels[:29], 0x08)))
    with pytest.raises(fd.CorruptDataError) as caught:
        fd.load_dataset("mnist", data_root=tmp_path)
    assert label_stem in str(caught.value) and "download mnist" in str(caught.value)


# ------------------------------------------------------------------------------------------
# CIFAR-10
# ------------------------------------------------------------------------------------------


def _write_cifar_folder(root: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    folder = root / fd.CIFAR10_DIRECTORY
    folder.mkdir(parents=True)
    generator = np.random.default_rng(1)
    all_images, all_labels = [], []
    for name in fd.CIFAR10_FILES["train"] + fd.CIFAR10_FILES["test"]:
        images = generator.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [int(value) for value in generator.integers(0, 10, size=per_batch)]
        _write_cifar_batch(folder / name, images, labels)
        if name != "test_batch":
            all_images.append(images)
            all_labels.extend(labels)
    return np.concatenate(all_images), np.asarray(all_labels)


def test_cifar10_reader_on_written_batches(tmp_path):
    images, labels = _write_cifar_folder(tmp_path)
    raw = fd.load_dataset("cifar10", "train", data_root=tmp_path)
    assert raw.inputs.shape == (20, 3, 32, 32) and raw.inputs.dtype == np.uint8
    assert np.array_equal(raw.inputs, images) and np.array_equal(raw.labels, labels)
    # row layout: 1024 red values, then green, then blue, each 32×32 row-major
    flat = images[0].reshape(3072)
    assert raw.inputs[0, 1, 2, 3] == flat[1024 + 2 * 32 + 3]
    assert fd.load_dataset("cifar10", "test", data_root=tmp_path).inputs.shape == (4, 3, 32, 32)


def test_cifar10_reader_refuses_foreign_pickles(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": os.getcwd}, protocol=2))
    with pytest.raises(fd.CorruptDataError, match="data_batch_1"):
        fd.read_cifar10_batch(path)
    wrong = tmp_path / "data_batch_2"
    _write_cifar_batch(wrong, np.zeros((2, 3, 32, 32), np.uint8), [0, 11])
    with pytest.raises(fd.CorruptDataError, match="labels"):
        fd.read_cifar10_batch(wrong)


# ------------------------------------------------------------------------------------------
# real data shipped with the environment
# ------------------------------------------------------------------------------------------


def test_mnist_5k_balanced_subset_shapes_and_class_order():
    raw = fd.load_mnist_5k()
    assert raw.inputs.shape == (5000, 1, 28, 28) and raw.num_classes == 10
    assert np.array_equal(raw.class_counts(), np.full(10, 500))
    prepared = fd.prepare_data(raw, per_class=7, seed=3)
    assert prepared.inputs.shape == (70, 784) and prepared.inputs.dtype == torch.float32
    assert prepared.per_class == 7 and prepared.ordered_by_class
    assert torch.equal(prepared.labels, torch.arange(10).repeat_interleave(7))
    expected = np.kron(np.eye(10), np.ones((1, 7)))  # Y = I_K ⊗ 1_nᵀ (docs/theory.md §1.1)
    assert np.array_equal(prepared.targets.numpy(), expected)
    again = fd.prepare_data(raw, per_class=7, seed=3)
    assert np.array_equal(again.indices, prepared.indices)
    other = fd.prepare_data(raw, per_class=7, seed=4)
    assert not np.array_equal(other.indices, prepared.indices)
    shuffled = fd.prepare_data(raw, per_class=7, seed=3, order_by_class=False)
    assert sorted(shuffled.indices) == sorted(prepared.indices)
    assert not fd.is_ordered_by_class(shuffled.labels)
    images = fd.prepare_data(raw, per_class=2, flatten=False, targets="plus_minus_one")
    assert images.inputs.shape == (20, 1, 28, 28)
    assert set(images.targets.unique().tolist()) == {-1.0, 1.0}


def test_fashion_mnist_from_the_debian_location():
    folder = fd.FASHION_MNIST_DEBIAN_DIRECTORY
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        # run.sh installs the package where it may (root with apt-get), as in CI: there a
        # missing file is a failed set-up, never a skip.
        if os.environ.get("CI"):
            pytest.fail(f"Debian package dataset-fashion-mnist not installed ({folder})")
        pytest.skip(f"Debian package dataset-fashion-mnist not installed ({folder})")
    test = fd.load_dataset("fashion-mnist", "test")
    assert test.inputs.shape == (10000, 1, 28, 28)
    assert np.array_equal(test.class_counts(), np.full(10, 1000))
    assert str(folder) in test.source and test.class_names[9] == "Ankle boot"


def test_select_classes_relabels_in_given_order():
    raw = fd.select_classes(fd.load_mnist_5k(), [8, 3])
    assert raw.num_classes == 2 and raw.class_names == ("8", "3")
    assert np.array_equal(raw.class_counts(), [500, 500])
    assert np.array_equal(raw.labels[:500], np.ones(500))  # the file holds the 3s first: label 1
    with pytest.raises(ValueError, match="classes"):
        fd.select_classes(raw, [0, 0])


# ------------------------------------------------------------------------------------------
# standardization, synthetic data, devices
# ------------------------------------------------------------------------------------------


def test_standardizations_and_reuse_on_a_test_set():
    raw = fd.gaussian_mixture(3, 10, 5, margin=3.0, seed=2)
    prepared = fd.prepare_data(raw, standardization="feature", dtype=torch.float64)
    assert torch.allclose(prepared.inputs.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(prepared.inputs.std(0, unbiased=False), torch.ones(5, dtype=torch.float64))
    test = fd.gaussian_mixture(3, 4, 5, margin=3.0, seed=9)
    reused = fd.prepare_data(test, standardization=prepared.standardization, dtype=torch.float64)
    manual = (test.inputs - np.asarray(prepared.standardization.shift)) / np.asarray(
        prepared.standardization.scale
    )
    assert np.allclose(reused.inputs.numpy(), manual[np.argsort(test.labels, kind="stable")])
    images = fd.prepare_data(fd.load_mnist_5k(), per_class=3, standardization="global",
                             flatten=False, dtype=torch.float64)
    assert abs(float(images.inputs.mean())) < 1e-12
    assert abs(float(images.inputs.std(unbiased=False)) - 1.0) < 1e-12
    with pytest.raises(ValueError, match="standardization"):
        fd.fit_standardization(raw.inputs, "robust")


def test_centred_standardization_is_fitted_on_the_training_subset():
    """``"centred"``: the per-coordinate mean of the chosen samples removed and one common scale, so that
    the prepared training inputs have mean 0 in every coordinate and mean sample norm 1 (or
    ``input_norm``), to float64 rounding; the fitted map is recorded and reused unchanged on other data."""
    raw = fd.load_mnist_5k()
    prepared = fd.prepare_data(raw, per_class=6, seed=1, standardization="centred", dtype=torch.float64)
    values = prepared.inputs.numpy()
    assert values.shape == (60, 784)
    assert np.allclose(values.mean(axis=0), 0.0, rtol=0, atol=1e-15)
    assert abs(float(np.mean(np.linalg.norm(values, axis=1))) - 1.0) < 1e-14
    fitted = prepared.standardization
    subset = raw.inputs[prepared.indices].reshape(60, -1).astype(np.float64)
    assert fitted.mode == "centred" and prepared.describe()["standardization"] == "centred"
    assert np.array_equal(np.asarray(fitted.shift), subset.mean(axis=0)) and len(fitted.scale) == 1
    assert fitted.scale[0] == float(np.mean(np.linalg.norm(subset - subset.mean(axis=0), axis=1)))
    # a target norm; the same map on unflattened images
    doubled = fd.prepare_data(raw, per_class=6, seed=1, standardization="centred", input_norm=2.0,
                              dtype=torch.float64)
    assert abs(float(np.mean(np.linalg.norm(doubled.inputs.numpy(), axis=1))) - 2.0) < 1e-14
    images = fd.prepare_data(raw, per_class=6, seed=1, standardization="centred", flatten=False,
                             dtype=torch.float64)
    assert images.input_shape == (1, 28, 28)
    assert np.array_equal(images.inputs.numpy().reshape(60, -1), values)
    # other samples (a "test" set) get the training map, not a refitted one
    other = fd.prepare_data(raw, per_class=6, seed=7, standardization=fitted, dtype=torch.float64)
    manual = (raw.inputs[other.indices].reshape(60, -1) - np.asarray(fitted.shift)) / fitted.scale[0]
    assert np.allclose(other.inputs.numpy(), manual, rtol=1e-15, atol=1e-15)
    assert other.standardization is fitted and np.abs(other.inputs.numpy().mean(axis=0)).max() > 1e-3
    rebuilt = fd.Standardization(**fitted.to_dict())
    assert np.array_equal(rebuilt.apply(subset), values)
    with pytest.raises(ValueError, match="all equal"):
        fd.fit_standardization(np.ones((5, 3)), "centred")
    with pytest.raises(ValueError, match="input_norm applies to standardization 'centred' only"):
        fd.fit_standardization(subset, "global", input_norm=2.0)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="input_norm must be a finite number > 0"):
            fd.fit_standardization(subset, "centred", input_norm=bad)


def test_gaussian_mixture_margin_and_errors():
    raw = fd.gaussian_mixture(4, 5, 6, margin=2.5, noise=0.0, seed=0)
    assert raw.inputs.shape == (20, 6)
    means = raw.inputs[::5]
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(4, 1)]
    assert np.allclose(distances, 2.5)
    with pytest.raises(ValueError, match="dimension"):
        fd.gaussian_mixture(4, 5, 3)
    with pytest.raises(ValueError, match="per_class"):
        fd.gaussian_mixture(4, 0, 6)


def test_device_resolution_and_bad_arguments():
    assert fd.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert fd.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            fd.resolve_device("cuda")
    with pytest.raises(TypeError, match="device"):
        fd.resolve_device(3)
    with pytest.raises(ValueError, match="per_class = 600 exceeds"):
        fd.balanced_subset_indices(fd.load_mnist_5k().labels, 600)
    with pytest.raises(TypeError, match="dataset"):
        fd.prepare_data(np.zeros((3, 3)))


# ------------------------------------------------------------------------------------------
# downloads, offline
# ------------------------------------------------------------------------------------------


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


def test_checksum_verification_on_a_local_file(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"neural collapse")
    md5 = hashlib.md5(b"neural collapse").hexdigest()
    assert fdl.verify_checksum(path, md5) == path
    assert fdl.file_digest(path, "sha256") == hashlib.sha256(b"neural collapse").hexdigest()
    with pytest.raises(fdl.ChecksumError, match="file.bin.*expected 0+"):
        fdl.verify_checksum(path, "0" * 32)


def test_offline_download_fails_clearly_and_leaves_nothing(tmp_path):
    def offline(request, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(fdl.DownloadError) as caught:
        fdl.download_dataset("mnist", tmp_path, opener=offline)
    message = str(caught.value)
    assert "train-images-idx3-ubyte.gz" in message and "no network access" in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert list(tmp_path.iterdir()) == []  # the MNIST/raw folders it created are removed too


def test_unreachable_url_gives_download_error(tmp_path):
    with pytest.raises(fdl.DownloadError, match="could not download x.gz"):
        fdl.fetch_file(["http://127.0.0.1:9/x.gz"], tmp_path / "x.gz", "0" * 32, timeout=2.0)
    assert list(tmp_path.iterdir()) == []


def test_fetch_verifies_checksum_before_renaming(tmp_path):
    payload = b"official bytes"
    served = lambda request, timeout: _Response(payload)  # noqa: E731
    good = hashlib.md5(payload).hexdigest()
    with pytest.raises(fdl.ChecksumError, match="expected"):
        fdl.fetch_file(["http://mirror/a.gz"], tmp_path / "a.gz", "f" * 32, opener=served)
    assert list(tmp_path.iterdir()) == []
    path = fdl.fetch_file(["http://mirror/a.gz"], tmp_path / "a.gz", good, opener=served)
    assert path.read_bytes() == payload and list(tmp_path.iterdir()) == [path]


def test_cifar10_download_extracts_and_verifies_members(tmp_path, monkeypatch):
    source = tmp_path / "source"
    _write_cifar_folder(source, per_batch=2)
    folder = source / fd.CIFAR10_DIRECTORY
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}, protocol=2))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        bundle.add(folder, arcname=fd.CIFAR10_DIRECTORY)
    archive = buffer.getvalue()
    members = {path.name: fdl.file_digest(path) for path in folder.iterdir()}
    spec = fdl.DownloadSpec("cifar10", ("http://mirror/",),
                            (fdl.RemoteFile("cifar-10-python.tar.gz", hashlib.md5(archive).hexdigest()),), "")
    monkeypatch.setitem(fdl.DOWNLOADS, "cifar10", spec)
    monkeypatch.setattr(fdl, "CIFAR10_MEMBER_MD5", members)
    root = tmp_path / "root"
    paths = fdl.download_dataset("cifar10", root, opener=lambda request, timeout: _Response(archive))
    assert paths == [root / fd.CIFAR10_DIRECTORY]
    assert not (root / "cifar-10-python.tar.gz").exists()
    assert fd.load_dataset("cifar10", "train", data_root=root).inputs.shape == (10, 3, 32, 32)


def test_official_checksum_table_is_well_formed():
    for spec in fdl.DOWNLOADS.values():
        for remote in spec.files:
            assert len(remote.md5) == 32 and int(remote.md5, 16) >= 0
    assert fdl.DOWNLOADS["mnist"].files[0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert fdl.DOWNLOADS["cifar10"].files[0].md5 == "c58f30108f718f92721af3b95e74349a"
