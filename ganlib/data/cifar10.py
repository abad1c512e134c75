"""CIFAR-10, one class at a time, read from the python tarball without unpickling code (chapter 7)."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ganlib.data.errors import DataNotFoundError

# fmt: off
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# fmt: on
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays and nothing else.

    A pickle names the functions it calls to rebuild objects; an ordinary
    Unpickler calls whatever it is told (os.system included). This one looks up
    only the few names NumPy arrays (from NumPy 1 and 2) and bytes are pickled with.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocols 0-2
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch contains only NumPy arrays, lists and bytes"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core.") :]  # NumPy 2 renamed numpy.core
        return super().find_class(module, name)


def _parse_cifar_batch(data: bytes, name: str):
    """One pickled CIFAR-10 batch -> (images uint8 (n, 32, 32, 3), labels int64 (n,)).

    Refuses anything that is not a dict with a uint8 (n, 3072) `data` array and
    n integer `labels` in 0..9, with a ValueError naming the batch.
    """
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # noqa: BLE001 - every failure here means "not a CIFAR batch"
        raise ValueError(f"{name} is not a readable CIFAR-10 batch: {error}") from None
    if not isinstance(batch, dict):
        raise ValueError(
            f"{name} is not a CIFAR-10 batch: expected a dict, got {type(batch).__name__}"
        )
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    images, labels = batch.get("data"), batch.get("labels")
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3072
    ):
        raise ValueError(f"{name} is not a CIFAR-10 batch: 'data' must be a uint8 array (n, 3072)")
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(images):
        raise ValueError(
            f"{name} is not a CIFAR-10 batch: 'labels' must be a list of {len(images)} integers"
        )
    try:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise TypeError
        labels = labels.astype(np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a CIFAR-10 batch: 'labels' must be integers") from None
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{name} is not a CIFAR-10 batch: labels must lie in 0..9")
    # Stored channel-first, each row 1024 red, 1024 green, 1024 blue values.
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def cifar_class_index(class_name_or_index) -> int:
    """The index 0-9 of a CIFAR-10 class: a name from CIFAR10_CLASSES, an index, or an index
    as text ("3"); a ValueError naming the classes otherwise (chapter 7)."""
    if isinstance(class_name_or_index, str) and class_name_or_index.strip().isdigit():
        class_name_or_index = int(class_name_or_index)
    if isinstance(class_name_or_index, int | np.integer) and not isinstance(
        class_name_or_index, bool
    ):
        if 0 <= class_name_or_index < len(CIFAR10_CLASSES):
            return int(class_name_or_index)
    elif (
        isinstance(class_name_or_index, str)
        and class_name_or_index.strip().lower() in CIFAR10_CLASSES
    ):
        return CIFAR10_CLASSES.index(class_name_or_index.strip().lower())
    raise ValueError(
        f"unknown CIFAR-10 class {class_name_or_index!r}: use an index 0-9 or one of {', '.join(CIFAR10_CLASSES)}"
    )


def _read_cifar_batches(source: Path, names: tuple) -> list[tuple[str, bytes]]:
    """The raw bytes of the named batch files from a folder or a .tar.gz archive."""
    if source.is_dir():
        for folder in (source / "cifar-10-batches-py", source):
            if all((folder / name).is_file() for name in names):
                return [(str(folder / name), (folder / name).read_bytes()) for name in names]
        archive = source / "cifar-10-python.tar.gz"
        if archive.is_file():
            return _read_cifar_batches(archive, names)
        raise DataNotFoundError(
            f"{source} holds no CIFAR-10 copy: expected the files {', '.join(names)} in it or in "
            "its cifar-10-batches-py/ folder, or a cifar-10-python.tar.gz archive"
        )
    try:
        with tarfile.open(source, "r:*") as archive:
            # Read members into memory by base name: nothing is extracted to disk.
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [name for name in names if name not in members]
            if missing:
                raise ValueError(
                    f"{source} is not a CIFAR-10 archive: it lacks {', '.join(missing)}"
                )
            return [
                (f"{source}:{name}", archive.extractfile(members[name]).read()) for name in names
            ]
    except tarfile.TarError as error:
        raise ValueError(
            f"{source} is neither a folder nor a readable .tar.gz archive: {error}"
        ) from None


def load_cifar10(class_name_or_index, split: str = "train", path=None) -> np.ndarray:
    """All CIFAR-10 images of one class as uint8 (n, 32, 32, 3): 5,000 per class (chapter 7).
    for split="train", 1,000 for split="test".

    class_name_or_index: a name from CIFAR10_CLASSES ("cat") or its index 0-9.
    A local copy is used when `path` or the GANLIB_CIFAR10 environment variable
    names one: a `cifar-10-batches-py` folder, a folder holding it, or the
    `cifar-10-python.tar.gz` archive. Otherwise `keras.datasets.cifar10` loads
    it (downloading once). The batch files are unpickled by an Unpickler that
    admits only NumPy arrays, so a crafted archive can't run code.
    """
    index = cifar_class_index(class_name_or_index)
    if split not in ("train", "test"):
        raise ValueError(f'split must be "train" or "test", got {split!r}')
    source = path if path is not None else os.environ.get("GANLIB_CIFAR10")
    if source:
        source = Path(source).expanduser()
        if not source.exists():
            where = "path" if path is not None else "GANLIB_CIFAR10"
            raise DataNotFoundError(
                f"CIFAR-10 copy not found: {where} points to {source}, which does not exist"
            )
        names = _CIFAR_TRAIN if split == "train" else _CIFAR_TEST
        parsed = [
            _parse_cifar_batch(data, name) for name, data in _read_cifar_batches(source, names)
        ]
        images = np.concatenate([images for images, _ in parsed])
        labels = np.concatenate([labels for _, labels in parsed])
        return images[labels == index]
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # noqa: BLE001 - offline shows up as many different errors
        raise DataNotFoundError(
            "CIFAR-10 is not available: downloading it with keras.datasets.cifar10 failed "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Either connect "
            "to the internet once so Keras can download it, or pass path= (or set the GANLIB_CIFAR10 "
            "environment variable) to a cifar-10-batches-py folder or a cifar-10-python.tar.gz file"
        ) from None
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    return np.asarray(images, np.uint8)[np.asarray(labels).reshape(-1) == index]
