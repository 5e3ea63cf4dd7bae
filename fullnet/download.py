"""Fetch the official files of MNIST, Fashion-MNIST and CIFAR-10, with checksums verified.

``python -m fullnet download mnist|fashion-mnist|cifar10 --data-root DIR`` writes the files
where :mod:`fullnet.data` (and torchvision) look for them: ``DIR/MNIST/raw``,
``DIR/FashionMNIST/raw`` and ``DIR/cifar-10-batches-py``. Every file is downloaded to a temporary
name, its MD5 compared with the value published with the official distribution (the values
torchvision's ``datasets`` also check), and only then renamed into place. Nothing here runs at
import time, and no test touches the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .data import CIFAR10_DIRECTORY, resolve_data_root
from .guards import created_ancestors, remove_created_folders


class DownloadError(OSError):
    """No mirror could deliver a file (typically: no network access)."""


class ChecksumError(ValueError):
    """A file's checksum differs from the official value."""


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name and MD5 (hex) as published."""

    filename: str
    md5: str


@dataclass(frozen=True)
class DownloadSpec:
    """Mirrors (URL prefixes ending in '/'), files, and the folder under the data root."""

    name: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    subdirectory: str


#: Official files and their MD5 values (as listed by the distributions and torchvision).
DOWNLOADS: dict[str, DownloadSpec] = {
    "mnist": DownloadSpec(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        subdirectory="MNIST/raw",
    ),
    "fashion-mnist": DownloadSpec(
        name="fashion-mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        subdirectory="FashionMNIST/raw",
    ),
    "cifar10": DownloadSpec(
        name="cifar10",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        subdirectory="",
    ),
}

#: MD5 of the files inside the CIFAR-10 archive, checked after extraction.
CIFAR10_MEMBER_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

Opener = Callable[..., Any]


def file_digest(path: str | os.PathLike, algorithm: str = "md5", chunk_size: int = 1 << 20) -> str:
    """Hex digest (``"md5"`` or ``"sha256"``) of a file, read in chunks."""
    if algorithm not in ("md5", "sha256"):
        raise ValueError(f"algorithm must be 'md5' or 'sha256', got {algorithm!r}")
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str, algorithm: str = "md5") -> Path:
    """Raise :class:`ChecksumError` naming the file unless its digest equals ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot verify {path}: the file does not exist")
    actual = file_digest(path, algorithm)
    if actual.lower() != expected.lower():
        raise ChecksumError(
            f"{path}: {algorithm} is {actual}, expected {expected} (the official file); the "
            "download is damaged or the file is another version; delete it and download again"
        )
    return path


class LocalWriteError(OSError):
    """Writing a downloaded file failed here (a full disk, a read-only folder), not the network."""


def _copy(response: Any, output: Any, destination: Path, chunk_size: int = 1 << 20) -> None:
    """Copy ``response`` to ``output``; a failed write raises :class:`LocalWriteError`."""
    while True:
        chunk = response.read(chunk_size)
        try:
            if not chunk:
                output.flush()
                os.fsync(output.fileno())
                return
            output.write(chunk)
        except OSError as error:
            raise LocalWriteError(
                error.errno, f"cannot write {destination}: {error.strerror or error}"
            ) from None


def fetch_file(
    urls: list[str] | tuple[str, ...],
    destination: str | os.PathLike,
    expected_md5: str,
    *,
    opener: Opener | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the first reachable URL to ``destination``, verify its MD5, rename into place.

    The bytes go to a temporary file in the destination folder, which is renamed with
    ``os.replace`` only after the checksum matched; a failure leaves no partial file.

    Parameters
    ----------
    urls : sequence of str
        Mirrors of the same file, tried in order.
    destination : path-like
    expected_md5 : str
    opener : callable, optional
        ``opener(request, timeout=...)`` returning a readable response; default
        ``urllib.request.urlopen`` (tests pass a stub).
    timeout : float
        Seconds per connection attempt.

    Raises
    ------
    DownloadError
        If no URL could be read (every failure is listed; typically no network access).
    LocalWriteError
        If the file could not be written here (a full disk); no mirror is tried after that.
    ChecksumError
        If a mirror delivered a file with another checksum (and no other mirror delivered the
        right one).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    open_url = urllib.request.urlopen if opener is None else opener
    failures: list[str] = []
    checksum_failure: ChecksumError | None = None
    for url in urls:
        handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part",
                                             dir=destination.parent)
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "ufm-sandbox/fullnet"})
            with os.fdopen(handle, "wb") as output:
                with open_url(request, timeout=timeout) as response:
                    _copy(response, output, destination)
            verify_checksum(temporary, expected_md5)
            os.replace(temporary, destination)
            return destination
        except ChecksumError as error:
            checksum_failure = ChecksumError(f"{url}: {error}")
            failures.append(f"{url}: checksum mismatch")
        except LocalWriteError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{url}: {error}")
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    if checksum_failure is not None:
        raise checksum_failure
    raise DownloadError(
        f"could not download {destination.name} (no network access?): " + "; ".join(failures)
        + ". Without network access, copy the official file to "
        f"{destination} on another machine (md5 {expected_md5})."
    )


def _extract_cifar10(archive: Path, root: Path) -> Path:
    """Extract ``cifar-10-batches-py`` from the official archive, refusing unsafe members."""
    target = root / CIFAR10_DIRECTORY
    with tarfile.open(archive, "r:gz") as bundle:
        members = []
        for member in bundle.getmembers():
            parts = Path(member.name).parts
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise ChecksumError(f"{archive}: unexpected archive member {member.name!r}")
            if parts and parts[0] == CIFAR10_DIRECTORY:
                members.append(member)
        staging = Path(tempfile.mkdtemp(prefix=".cifar10-", dir=root))
        try:
            if hasattr(tarfile, "data_filter"):
                bundle.extractall(staging, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                bundle.extractall(staging, members=members)
            extracted = staging / CIFAR10_DIRECTORY
            for filename, md5 in CIFAR10_MEMBER_MD5.items():
                verify_checksum(extracted / filename, md5)
            if target.exists():
                shutil.rmtree(target)
            os.replace(extracted, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def download_dataset(
    name: str,
    data_root: str | os.PathLike | None = None,
    *,
    opener: Opener | None = None,
    timeout: float = 60.0,
    keep_archive: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Download and verify the official files of ``name`` under the data root.

    Files already present with the right checksum are not downloaded again.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist", "cifar10"}
    data_root : path-like, optional
        See :func:`fullnet.data.resolve_data_root`.
    opener, timeout
        See :func:`fetch_file`.
    keep_archive : bool
        Keep ``cifar-10-python.tar.gz`` after extraction.
    log : callable, optional
        Receives one line per file.

    Returns
    -------
    list of Path
        The files (for CIFAR-10, the extracted folder).
    """
    if name not in DOWNLOADS:
        raise ValueError(f"name must be one of {sorted(DOWNLOADS)}, got {name!r}")
    spec = DOWNLOADS[name]
    root = resolve_data_root(data_root)
    folder = root / spec.subdirectory if spec.subdirectory else root
    created = created_ancestors(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _download_into(name, spec, root, folder, opener=opener, timeout=timeout,
                              keep_archive=keep_archive, say=log or (lambda message: None))
    except BaseException:
        remove_created_folders(created, files=())  # only folders this call created and left empty
        raise


def _download_into(name: str, spec: DownloadSpec, root: Path, folder: Path, *, opener: Opener | None,
                   timeout: float, keep_archive: bool, say: Callable[[str], None]) -> list[Path]:
    if name == "cifar10" and all(
        (root / CIFAR10_DIRECTORY / filename).is_file() for filename in CIFAR10_MEMBER_MD5
    ):
        try:
            for filename, md5 in CIFAR10_MEMBER_MD5.items():
                verify_checksum(root / CIFAR10_DIRECTORY / filename, md5)
            say(f"{root / CIFAR10_DIRECTORY}: present, checksums verified")
            return [root / CIFAR10_DIRECTORY]
        except ChecksumError:
            pass
    paths = []
    for remote in spec.files:
        destination = folder / remote.filename
        if destination.is_file():
            try:
                verify_checksum(destination, remote.md5)
                say(f"{destination}: present, checksum verified")
                paths.append(destination)
                continue
            except ChecksumError:
                say(f"{destination}: checksum mismatch, downloading again")
        urls = [mirror + remote.filename for mirror in spec.mirrors]
        fetch_file(urls, destination, remote.md5, opener=opener, timeout=timeout)
        say(f"{destination}: downloaded, md5 {remote.md5} verified")
        paths.append(destination)
    if name == "cifar10":
        archive = paths[0]
        extracted = _extract_cifar10(archive, root)
        say(f"{extracted}: extracted, checksums verified")
        if not keep_archive:
            archive.unlink()
        return [extracted]
    return paths


__all__ = [
    "CIFAR10_MEMBER_MD5",
    "ChecksumError",
    "DOWNLOADS",
    "DownloadError",
    "DownloadSpec",
    "LocalWriteError",
    "RemoteFile",
    "download_dataset",
    "fetch_file",
    "file_digest",
    "verify_checksum",
]
