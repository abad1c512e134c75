"""Tests for ganlib.data: toy faces, the folder loader and its cache, CIFAR-10
parsing, the anime faces, image_dataset and SOURCE strings. Every data set is
built here in tmp_path; nothing is downloaded."""

import functools
import io
import os
import pickle
import sys
import tarfile
import types
import warnings

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from ganlib import data
from ganlib.data import (
    FACTOR_LEVELS,
    FACTOR_NAMES,
    FACTOR_SIZES,
    DataNotFoundError,
    anime_faces,
    decode_toy_faces,
    image_dataset,
    load_cifar10,
    load_image_folder,
    load_source,
    toy_faces,
)

# ---------------------------------------------------------------------------
# Toy faces
# ---------------------------------------------------------------------------


def test_toy_faces_shapes_dtypes_and_ranges():
    for size in (32, 64):
        images, factors = toy_faces(30, image_size=size, seed=1)
        assert images.shape == (30, size, size, 3) and images.dtype == np.uint8
        assert factors.shape == (30, 5) and factors.dtype == np.int64
        assert (factors >= 0).all() and (factors < np.array(FACTOR_SIZES)).all()
    assert len(FACTOR_NAMES) == len(FACTOR_SIZES) == 5
    assert np.prod(FACTOR_SIZES) == 2304
    assert [len(FACTOR_LEVELS[name]) for name in FACTOR_NAMES] == list(FACTOR_SIZES)
    empty, no_factors = toy_faces(0)
    assert empty.shape == (0, 64, 64, 3) and no_factors.shape == (0, 5)


def test_toy_faces_are_deterministic():
    a, fa = toy_faces(40, 32, seed=7)
    b, fb = toy_faces(40, 32, seed=7)
    c, fc = toy_faces(40, 32, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(fa, fc) and not np.array_equal(a, c)
    # The factors of a seed do not depend on the image size.
    _, f64 = toy_faces(40, 64, seed=7)
    np.testing.assert_array_equal(fa, f64)


def test_toy_faces_jitter_moves_identical_factors():
    # Many faces with the same five factors: the jitter must still make them differ.
    images, factors = toy_faces(3000, 32, seed=0)
    _, index, counts = np.unique(factors, axis=0, return_index=True, return_counts=True)
    repeated = factors[index[counts.argmax()]]
    same = images[(factors == repeated).all(axis=1)]
    assert len(same) >= 3
    assert len({im.tobytes() for im in same}) > 1


def test_toy_faces_factors_are_uniform_and_independent():
    _, factors = toy_faces(4000, 32, seed=0)
    for k, levels in enumerate(FACTOR_SIZES):
        counts = np.bincount(factors[:, k], minlength=levels)
        assert stats.chisquare(counts).pvalue > 0.001, FACTOR_NAMES[k]
    for i in range(5):
        for j in range(i + 1, 5):
            table = np.zeros((FACTOR_SIZES[i], FACTOR_SIZES[j]))
            np.add.at(table, (factors[:, i], factors[:, j]), 1)
            assert stats.chi2_contingency(table).pvalue > 0.001, (FACTOR_NAMES[i], FACTOR_NAMES[j])


def test_toy_faces_other_sizes_and_bad_arguments():
    images, _ = toy_faces(3, image_size=48)
    assert images.shape == (3, 48, 48, 3)
    for bad in (8, 0, 32.0, "64"):
        with pytest.raises(ValueError, match="image_size"):
            toy_faces(3, image_size=bad)
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="n must"):
            toy_faces(bad)


def test_toy_faces_are_antialiased():
    # Drawn at 4x and box-filtered: edges hold blended colours, not only palette colours.
    images, factors = toy_faces(1, 64, seed=0)
    colours = {tuple(p) for p in images[0].reshape(-1, 3)}
    assert len(colours) > 100


@functools.cache
def _faces_to_decode(size):
    return toy_faces(1500, size, seed=123)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("value_range", ["uint8", "-1..1", "0..1"])
def test_decode_recovers_factors(size, value_range):
    images, factors = _faces_to_decode(size)
    if value_range == "-1..1":
        images = images.astype(np.float32) / 127.5 - 1.0
    elif value_range == "0..1":
        images = images.astype(np.float32) / 255.0
    decoded = decode_toy_faces(images)
    assert decoded.shape == (1500, 5)
    accuracy = (decoded == factors).mean(axis=0)
    assert (accuracy >= 0.99).all(), dict(zip(FACTOR_NAMES, accuracy, strict=True))


@pytest.mark.parametrize("size", [32, 64])
def test_decode_refuses_noise_and_blank_images(size):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (100, size, size, 3), dtype=np.uint8)
    float_noise = rng.uniform(-1, 1, (50, size, size, 3)).astype(np.float32)
    unit_noise = rng.uniform(0, 1, (50, size, size, 3))
    blanks = np.stack(
        [np.full((size, size, 3), value, np.uint8) for value in (0, 64, 128, 192, 255)]
        + [
            np.broadcast_to(rng.integers(0, 256, 3).astype(np.uint8), (size, size, 3))
            for _ in range(20)
        ]
    )
    for images in (noise, float_noise, unit_noise, blanks, blanks.astype(np.float32) / 255.0):
        assert (decode_toy_faces(images) == -1).all()
    # Blank float images in [-1, 1] too, e.g. a collapsed generator's output.
    assert (decode_toy_faces(np.full((3, size, size, 3), -1.0)) == -1).all()
    assert (decode_toy_faces(np.zeros((3, size, size, 3), np.float32)) == -1).all()


def test_decode_bad_shapes():
    for bad in (
        np.zeros((32, 32, 3), np.uint8),
        np.zeros((2, 32, 32), np.uint8),
        np.zeros((2, 32, 40, 3), np.uint8),
    ):
        with pytest.raises(ValueError, match="shape"):
            decode_toy_faces(bad)


# ---------------------------------------------------------------------------
# load_image_folder
# ---------------------------------------------------------------------------

READABLE = [
    "gray.jpg",
    "palette.png",
    "rgba.png",
    "cmyk.jpg",
    "deep.png",
    "rotated.jpg",
    "sub/nested.bmp",
    "sub/anim.gif",
    "sub/deeper/photo.webp",
]
UNREADABLE = ["truncated.jpg", "empty.png", "notes.png"]


def _make_folder(root):
    """Every kind of file the loader must handle, plus three it must skip."""
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.new("L", (40, 40), 90).save(root / "gray.jpg")
    palette = Image.new("P", (40, 40), 1)  # index 1 (green) inside, index 0 (transparent) border
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(0, (0, 0, 40, 10))
    palette.save(root / "palette.png", transparency=0)
    rgba = Image.new("RGBA", (40, 40), (0, 0, 255, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 40, 20))  # fully transparent top half
    rgba.save(root / "rgba.png")
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(root / "cmyk.jpg")  # red in CMYK
    Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(root / "deep.png")  # 16-bit gray
    # 60 wide, 30 tall, red marker on the left; EXIF orientation 6 says "turn 90 degrees
    # clockwise to view", so the viewed picture is 30 wide, 60 tall, marker on top.
    rotated = Image.new("RGB", (60, 30), (255, 255, 255))
    rotated.paste((255, 0, 0), (0, 0, 15, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(root / "rotated.jpg", exif=exif, quality=95)
    Image.new("RGB", (40, 40), (0, 128, 0)).save(root / "sub" / "nested.bmp")
    frames = [Image.new("P", (40, 40), i) for i in range(2)]
    for frame in frames:
        frame.putpalette([255, 255, 0, 0, 0, 255] + [0] * 762)
    frames[0].save(
        root / "sub" / "anim.gif", save_all=True, append_images=frames[1:]
    )  # frame 0 yellow
    Image.new("RGB", (40, 40), (10, 20, 200)).save(root / "sub" / "deeper" / "photo.webp")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "whole.jpg")
    full = (root / "whole.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "whole.jpg").unlink()
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("these are not pixels\n")
    (root / "readme.txt").write_text("not an image extension: ignored, not counted\n")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pictures"
    root.mkdir()
    _make_folder(root)
    data._MEMORY_CACHE.clear()
    yield root
    data._MEMORY_CACHE.clear()


def _load(folder, **kwargs):
    with pytest.warns(UserWarning) as record:
        result = load_image_folder(folder, return_report=True, **kwargs)
    assert len(record) == 1  # one warning, however many files were skipped
    return result, str(record[0].message)


def test_folder_reads_every_format_and_skips_bad_files(folder):
    (images, report), message = _load(folder, image_size=32, crop="none")
    assert images.shape == (len(READABLE), 32, 32, 3) and images.dtype == np.uint8
    assert sorted(report.files) == sorted(READABLE)
    assert sorted(name for name, _ in report.skipped) == sorted(UNREADABLE)
    for name in UNREADABLE:
        assert name in message
    assert "skipped 3" in message
    by_name = dict(zip(report.files, images, strict=True))
    centre = lambda name: by_name[name][16, 16].astype(int)  # noqa: E731
    assert abs(centre("gray.jpg") - 90).max() <= 3  # grayscale -> R = G = B
    np.testing.assert_array_equal(
        by_name["palette.png"][1, 16], [255, 255, 255]
    )  # transparent -> white
    np.testing.assert_array_equal(by_name["palette.png"][28, 16], [0, 255, 0])
    np.testing.assert_array_equal(by_name["rgba.png"][2, 16], [255, 255, 255])
    np.testing.assert_array_equal(by_name["rgba.png"][28, 16], [0, 0, 255])
    assert abs(centre("cmyk.jpg") - [255, 0, 0]).max() <= 8
    assert abs(centre("deep.png") - round(40000 / 257)).max() <= 1  # scaled, not clipped to 255
    assert abs(centre("sub/anim.gif") - [255, 255, 0]).max() <= 1  # first frame
    assert abs(centre("sub/deeper/photo.webp") - [10, 20, 200]).max() <= 12
    rotated = by_name["rotated.jpg"].astype(int)
    assert (rotated[:6, :, 0] > 200).all() and (rotated[:6, :, 1:] < 60).all()  # marker on top
    assert (rotated[12:] > 200).all()  # the rest stays white


def test_folder_natural_order_crop_and_limit(tmp_path):
    data._MEMORY_CACHE.clear()
    for i in (10, 2, 1):
        picture = Image.new("RGB", (60, 20), (0, 0, 0))
        picture.paste((255, 255, 255), (20, 0, 40, 20))  # white middle third
        picture.save(tmp_path / f"{i}.png")
    images, report = load_image_folder(tmp_path, image_size=16, return_report=True)
    assert report.files == ("1.png", "2.png", "10.png")
    assert (images[0] > 250).all()  # centre crop: only the white middle
    squeezed = load_image_folder(tmp_path, image_size=16, crop="none")
    assert squeezed[0, 8, 0].max() < 5 and squeezed[0, 8, 8].min() > 250
    first_two, report = load_image_folder(tmp_path, image_size=16, limit=2, return_report=True)
    assert report.files == ("1.png", "2.png") and len(first_two) == 2
    with pytest.raises(ValueError, match="crop"):
        load_image_folder(tmp_path, crop="middle")


def test_folder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist") as caught:
        load_image_folder(tmp_path / "missing")
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match=r"no image files \(\.jpg"):
        load_image_folder(tmp_path)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="could be read"):
            load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        load_image_folder(tmp_path / "bad.jpg")


def test_folder_cache_is_reused_and_invalidated(folder, monkeypatch):
    cache = folder.parent / "cache"
    (first, report), _ = _load(folder, cache_dir=cache)
    assert report.source == "decoded"
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]

    # Same process: from memory, the very same array.
    (again, report), _ = _load(folder, cache_dir=cache)
    assert report.source == "memory" and again is first
    assert not first.flags.writeable

    # A new process (memory cleared): from disk, without decoding anything.
    data._MEMORY_CACHE.clear()

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(data, "_read_image", no_decoding)
    (cached, report), message = _load(folder, cache_dir=cache)
    assert report.source == "disk cache"
    np.testing.assert_array_equal(cached, first)
    assert "notes.png" in message  # skipped files are still reported
    monkeypatch.undo()

    # Added, modified and removed files each rebuild it.
    Image.new("RGB", (40, 40), (200, 100, 0)).save(folder / "added.png")
    (added, report), _ = _load(folder, cache_dir=cache)
    assert report.source == "decoded" and len(added) == len(first) + 1

    Image.new("RGB", (40, 40), (0, 100, 200)).save(folder / "added.png")
    stat = (folder / "added.png").stat()
    os.utime(folder / "added.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    data._MEMORY_CACHE.clear()
    (modified, report), _ = _load(folder, cache_dir=cache)
    assert report.source == "decoded"
    index = report.files.index("added.png")
    assert abs(modified[index, 16, 16].astype(int) - [0, 100, 200]).max() <= 2

    (folder / "added.png").unlink()
    (folder / "gray.jpg").unlink()
    (removed, report), _ = _load(folder, cache_dir=cache)
    assert report.source == "decoded" and len(removed) == len(first) - 1


def test_folder_default_cache_lives_in_the_folder(folder):
    (images, report), _ = _load(folder, image_size=32)
    assert report.cache_file.parent == folder / ".ganlib-cache"
    assert report.cache_file.exists() and report.cache_file.with_suffix(".json").exists()
    data._MEMORY_CACHE.clear()
    (again, report), _ = _load(folder, image_size=32)  # the cache folder itself is not scanned
    assert report.source == "disk cache" and len(again) == len(images)


# ---------------------------------------------------------------------------
# CIFAR-10
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


# ---------------------------------------------------------------------------
# Anime faces
# ---------------------------------------------------------------------------


def test_anime_faces_without_path_or_kagglehub_says_how(monkeypatch):
    monkeypatch.delenv("GANLIB_ANIME_FACES", raising=False)
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # import kagglehub -> ImportError
    with pytest.raises(DataNotFoundError) as caught:
        anime_faces()
    message = str(caught.value)
    for part in (
        "path=",
        "GANLIB_ANIME_FACES",
        "pip install kagglehub",
        "ganlib[kaggle]",
        "splcher/animefacedataset",
    ):
        assert part in message


def _anime_folder(root, names):
    images = root / "images"
    images.mkdir(parents=True)
    for i, name in enumerate(names):
        Image.new("RGB", (48, 48), (i * 20 % 256, 100, 150)).save(images / name)
    return root


def test_anime_subset_picks_the_first_files_in_natural_order(tmp_path, monkeypatch):
    data._MEMORY_CACHE.clear()
    names = ["10_2000.jpg", "2_2000.jpg", "0_2000.jpg", "1_2001.jpg", "11_2003.jpg", "3_2002.jpg"]
    root = _anime_folder(tmp_path / "anime", names)
    read = []
    original = data._read_image

    def counting(path, *args):
        read.append(path.name)
        return original(path, *args)

    monkeypatch.setattr(data, "_read_image", counting)
    images, report = anime_faces(root, subset=3, image_size=32, return_report=True)
    assert images.shape == (3, 32, 32, 3)
    assert report.files == ("0_2000.jpg", "1_2001.jpg", "2_2000.jpg")
    assert sorted(read) == sorted(report.files)  # only those files were decoded
    assert data.ANIME_SUBSET == 4992
    everything = anime_faces(root, image_size=32)
    assert len(everything) == len(names)
    with pytest.raises(ValueError, match="subset"):
        anime_faces(root, subset=0)


def test_anime_faces_downloads_with_kagglehub_when_installed(tmp_path, monkeypatch):
    data._MEMORY_CACHE.clear()
    monkeypatch.delenv("GANLIB_ANIME_FACES", raising=False)
    root = _anime_folder(tmp_path / "download", ["0_2000.jpg", "1_2000.jpg"])
    asked = []

    def dataset_download(handle):
        asked.append(handle)
        return str(root)

    monkeypatch.setitem(
        sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=dataset_download)
    )
    assert anime_faces(image_size=32).shape == (2, 32, 32, 3)
    assert asked == ["splcher/animefacedataset"]
    monkeypatch.setenv("GANLIB_ANIME_FACES", str(root))
    assert anime_faces(image_size=32).shape == (2, 32, 32, 3) and len(asked) == 1


# ---------------------------------------------------------------------------
# image_dataset
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces32():
    return toy_faces(70, 32, seed=0)[0]


def test_image_dataset_batches_scaled_to_minus_one_one(faces32):
    batches = [b.numpy() for b in image_dataset(faces32, 32, shuffle=False)]
    assert len(batches) == 2  # 70 images: the last 6 are dropped
    for batch in batches:
        assert batch.shape == (32, 32, 32, 3) and batch.dtype == np.float32
        assert batch.min() >= -1.0 and batch.max() <= 1.0
    np.testing.assert_allclose(batches[0], faces32[:32] / 127.5 - 1.0, atol=1e-6)
    assert batches[0].min() < -0.5 and batches[0].max() > 0.9


def test_image_dataset_zero_one_and_shuffling(faces32):
    dataset = image_dataset(faces32, 10, value_range=(0, 1), seed=3)
    first = np.concatenate([b.numpy() for b in dataset])
    second = np.concatenate([b.numpy() for b in dataset])
    assert first.shape == (70, 32, 32, 3) and first.min() >= 0.0 and first.max() <= 1.0
    # Every batch image is one of the inputs, scaled; each epoch is a new order.
    sums = {int(s) for s in faces32.reshape(70, -1).astype(np.int64).sum(axis=1)}
    assert {int(round(s)) for s in (first * 255).reshape(70, -1).sum(axis=1)} <= sums
    assert not np.array_equal(first, second)
    np.testing.assert_allclose(
        np.sort(first.reshape(70, -1).sum(1)), np.sort(second.reshape(70, -1).sum(1)), rtol=1e-5
    )
    # Same seed, same order.
    again = np.concatenate(
        [b.numpy() for b in image_dataset(faces32, 10, value_range=(0, 1), seed=3)]
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(
        first, np.concatenate([b.numpy() for b in image_dataset(faces32, 10, value_range=(0, 1))])
    )


def test_image_dataset_bad_arguments(faces32):
    for bad in (0, -1, 71, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            image_dataset(faces32, bad)
    with pytest.raises(ValueError, match="uint8"):
        image_dataset(faces32.astype(np.float32), 8)
    for bad in ((1, -1), 1.0, (0, 1, 2)):
        with pytest.raises(ValueError, match="value_range"):
            image_dataset(faces32, 8, value_range=bad)


# ---------------------------------------------------------------------------
# load_source
# ---------------------------------------------------------------------------


def test_load_source_specs(tmp_path, monkeypatch):
    images, description = load_source("toy-faces:12", image_size=32)
    assert images.shape == (12, 32, 32, 3) and "toy faces" in description
    np.testing.assert_array_equal(images, toy_faces(12, 32)[0])
    _write_cifar(tmp_path / "cifar")
    monkeypatch.setenv("GANLIB_CIFAR10", str(tmp_path / "cifar"))
    cats, description = load_source("cifar10:cat", image_size=64)
    assert cats.shape == (10, 64, 64, 3) and "cat" in description  # upsampled from 32
    assert load_source("cifar10:3", image_size=32)[0].shape == (10, 32, 32, 3)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(pictures / "a.png")
    assert load_source(str(pictures), image_size=32)[0].shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("toy-face", ValueError, "unknown source"),
        ("toy-faces:abc", ValueError, "positive integer"),
        ("toy-faces:0", ValueError, "positive integer"),
        ("cifar10", ValueError, "name a class"),
        ("cifar10:dragon", ValueError, "unknown CIFAR-10 class"),
        ("anime-faces:-3", ValueError, "positive integer"),
        ("./no/such/folder", DataNotFoundError, "does not exist"),
        ("", ValueError, "empty source"),
    ],
)
def test_load_source_bad_specs(spec, error, message):
    with pytest.raises(error, match=message) as caught:
        load_source(spec)
    assert "\n" not in str(caught.value)
