"""Tests for ganlib/data/cifar10.py: the real format is built here; nothing is downloaded."""

import io
import os
import pickle
import sys
import tarfile
import types

import numpy as np
import pytest

from ganlib.data import (
    DataNotFoundError,
    load_cifar10,
)

# ---------------------------------------------------------------------------
# Toy faces
# ---------------------------------------------------------------------------


def _cifar_batch(labels, batch_label):
    """A batch in the real format: a dict with bytes keys, uint8 (n, 3072) data
    stored channel-first, a list of int labels."""
    n = len(labels)
    planes = np.zeros((n, 3, 32, 32), np.uint8)
    planes[:, 0] = np.arange(1024, dtype=np.uint8).reshape(32, 32)  # red: (y * 32 + x) % 256
    planes[:, 1] = np.asarray(labels, np.uint8)[:, None, None] * 20  # green: the label
    planes[:, 2] = np.arange(n, dtype=np.uint8)[:, None, None]  # blue: position in batch
    return {
        b"batch_label": batch_label.encode(),
        b"labels": list(labels),
        b"data": planes.reshape(n, 3072),
        b"filenames": [f"image_{i}.png".encode() for i in range(n)],
    }


class _Python2Pickler(pickle._Pickler):
    """Pickles like the Python 2 that wrote the real CIFAR-10 files: bytes as
    Python 2 strings, NumPy functions under their NumPy 1 module names."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        size = len(obj)
        if size < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([size]) + obj)
        else:
            self.write(pickle.BINSTRING + size.to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{obj.__qualname__}\n".encode())
        self.memoize(obj)


def _python2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _write_cifar(root, batches=None, dumps=_python2_pickle):
    """cifar-10-batches-py under root; returns that folder. Each training batch has
    labels 0..9 twice (20 images), the test batch once."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = (batches or {}).get(name)
        if batch is None:
            batch = _cifar_batch(list(range(10)) * (1 if name == "test_batch" else 2), name)
        (folder / name).write_bytes(dumps(batch))
    return folder


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_pickled_by_python3_load_too(tmp_path, protocol):
    folder = _write_cifar(tmp_path, dumps=lambda batch: pickle.dumps(batch, protocol=protocol))
    assert load_cifar10("dog", path=folder).shape == (10, 32, 32, 3)


def test_cifar_archive_and_environment_variable(tmp_path, monkeypatch):
    folder = _write_cifar(tmp_path / "unpacked")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    expected = load_cifar10("truck", path=folder)
    np.testing.assert_array_equal(load_cifar10("truck", path=archive), expected)
    monkeypatch.setenv("GANLIB_CIFAR10", str(archive))
    np.testing.assert_array_equal(load_cifar10("truck"), expected)
    holder = tmp_path / "holder"
    holder.mkdir()
    archive.rename(holder / archive.name)
    monkeypatch.setenv("GANLIB_CIFAR10", str(holder))  # a folder holding the archive
    np.testing.assert_array_equal(load_cifar10(9), expected)
    monkeypatch.setenv("GANLIB_CIFAR10", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="GANLIB_CIFAR10"):
        load_cifar10("cat")


class _RunsCode:
    """Unpickling this calls os.system: what a crafted archive would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_cifar_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "marker"
    evil = _cifar_batch(list(range(10)), "evil")
    evil[b"labels"] = _RunsCode(f"touch {marker}")
    folder = _write_cifar(tmp_path / "evil", {"data_batch_1": evil})
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar10("cat", path=folder)
    assert not marker.exists()
    # Also inside a .tar.gz.
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar10("cat", path=archive)
    assert not marker.exists()


@pytest.mark.parametrize(
    "batch, message",
    [
        ([1, 2, 3], "expected a dict"),
        ({b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "3072"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, "0..9"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "labels"),
    ],
)
def test_cifar_refuses_wrong_structures(tmp_path, batch, message):
    folder = _write_cifar(tmp_path, {"data_batch_2": batch})
    with pytest.raises(ValueError, match=message):
        load_cifar10("cat", path=folder)


def _fake_keras(monkeypatch, load_data):
    fake = types.SimpleNamespace(
        datasets=types.SimpleNamespace(cifar10=types.SimpleNamespace(load_data=load_data))
    )
    monkeypatch.setitem(sys.modules, "keras", fake)


def test_cifar_offline_without_a_copy_names_both_options(monkeypatch):
    monkeypatch.delenv("GANLIB_CIFAR10", raising=False)

    def offline():
        raise Exception("URL fetch failure: Name or service not known")

    _fake_keras(monkeypatch, offline)
    with pytest.raises(DataNotFoundError) as caught:
        load_cifar10("cat")
    message = str(caught.value)
    assert "GANLIB_CIFAR10" in message and "path=" in message
    assert "download" in message and "keras.datasets.cifar10" in message


def test_cifar_uses_keras_when_no_copy_is_given(monkeypatch):
    monkeypatch.delenv("GANLIB_CIFAR10", raising=False)
    x = np.arange(6 * 32 * 32 * 3, dtype=np.uint8).reshape(6, 32, 32, 3)
    y = np.array([[3], [1], [3], [0], [3], [9]])
    _fake_keras(monkeypatch, lambda: ((x, y), (x[:2], y[:2])))
    np.testing.assert_array_equal(load_cifar10("cat"), x[[0, 2, 4]])
    np.testing.assert_array_equal(load_cifar10("cat", split="test"), x[[0]])


def test_cifar_folder_parses_the_real_format(tmp_path):
    folder = _write_cifar(tmp_path)
    cats = load_cifar10("cat", path=folder)
    assert cats.shape == (10, 32, 32, 3) and cats.dtype == np.uint8  # 2 per batch, 5 batches
    np.testing.assert_array_equal(cats[0, :, :, 0], np.arange(1024, dtype=np.uint8).reshape(32, 32))
    assert (cats[..., 1] == 3 * 20).all()
    np.testing.assert_array_equal(
        load_cifar10(3, path=tmp_path), cats
    )  # the parent folder works too
    test_cats = load_cifar10("CAT", split="test", path=folder)
    assert len(test_cats) == 1
    with pytest.raises(ValueError, match="unknown CIFAR-10 class"):
        load_cifar10("dragon", path=folder)
    with pytest.raises(ValueError, match="unknown CIFAR-10 class"):
        load_cifar10(10, path=folder)
    with pytest.raises(ValueError, match="split"):
        load_cifar10("cat", split="valid", path=folder)
