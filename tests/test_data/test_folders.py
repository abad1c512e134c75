"""Tests for ganlib/data/folders.py."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from ganlib import data
from ganlib.data import (
    DataNotFoundError,
    folders,
    load_image_folder,
)

# ---------------------------------------------------------------------------
# Toy faces
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
    data.clear_image_cache()
    yield root
    data.clear_image_cache()


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
    data.clear_image_cache()
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
    data.clear_image_cache()

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(folders, "_read_image", no_decoding)
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
    data.clear_image_cache()
    (modified, report), _ = _load(folder, cache_dir=cache)
    assert report.source == "decoded"
    index = report.files.index("added.png")
    assert abs(modified[index, 16, 16].astype(int) - [0, 100, 200]).max() <= 2

    (folder / "added.png").unlink()
    (folder / "gray.jpg").unlink()
    (removed, report), _ = _load(folder, cache_dir=cache)
    assert report.source == "decoded" and len(removed) == len(first) - 1


def test_folder_default_cache_lives_in_the_folder(folder, monkeypatch):
    monkeypatch.delenv("GANLIB_CACHE", raising=False)
    (images, report), _ = _load(folder, image_size=32)
    assert report.cache_file.parent == folder / ".ganlib-cache"
    assert report.cache_file.exists() and report.cache_file.with_suffix(".json").exists()
    data.clear_image_cache()
    (again, report), _ = _load(folder, image_size=32)  # the cache folder itself is not scanned
    assert report.source == "disk cache" and len(again) == len(images)


def test_folder_cache_goes_under_ganlib_cache_when_set(folder, tmp_path, monkeypatch):
    shared = tmp_path / "shared-cache"
    monkeypatch.setenv("GANLIB_CACHE", str(shared))
    (images, report), _ = _load(folder, image_size=32)
    assert report.cache_file.parent.parent == shared / "folders"
    assert report.cache_file.exists()
    assert not (folder / ".ganlib-cache").exists()  # the folder itself stays untouched
    # Another folder gets its own cache; the first one is found again after a restart.
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(other / "one.png")
    other_report = load_image_folder(other, image_size=32, return_report=True)[1]
    assert other_report.cache_file.parent.parent == shared / "folders"
    assert other_report.cache_file.parent != report.cache_file.parent
    data.clear_image_cache()
    (again, report), _ = _load(folder, image_size=32)
    assert report.source == "disk cache"
    np.testing.assert_array_equal(again, images)
    # An explicit cache_dir still comes first.
    data.clear_image_cache()
    (_, report), _ = _load(folder, image_size=32, cache_dir=tmp_path / "mine")
    assert report.cache_file.parent == tmp_path / "mine"


def _small_folders(root, count):
    """`count` folders of two 20 px images each, every folder its own colour."""
    made = []
    for i in range(count):
        path = root / f"folder{i}"
        path.mkdir()
        for j in range(2):
            Image.new("RGB", (20, 20), (10 * i, 5 * j, 0)).save(path / f"{j}.png")
        made.append(path)
    return made


@pytest.fixture
def count_decodes(monkeypatch):
    """How many files folders._read_image decoded, per folder name."""
    counts = {}
    read = folders._read_image

    def counting(path, image_size, crop):
        counts[path.parent.name] = counts.get(path.parent.name, 0) + 1
        return read(path, image_size, crop)

    monkeypatch.setattr(folders, "_read_image", counting)
    return counts


def _sources(paths, tmp_path):
    """Load each folder in turn (each with its own disk cache); where each came from."""
    return [
        load_image_folder(
            path, image_size=16, cache_dir=tmp_path / "cache" / path.name, return_report=True
        )[1].source
        for path in paths
    ]


def test_memory_cache_keeps_the_most_recently_used_folders(tmp_path, monkeypatch, count_decodes):
    data.clear_image_cache()
    monkeypatch.setattr(folders, "MEMORY_CACHE_MAX_ENTRIES", 2, raising=False)
    first, second, third = _small_folders(tmp_path, 3)
    assert _sources([first, second], tmp_path) == ["decoded", "decoded"]
    assert _sources([first], tmp_path) == ["memory"]  # now second is the least recently used
    assert _sources([third], tmp_path) == ["decoded"]  # ... and is dropped to make room
    assert _sources([first, third], tmp_path) == ["memory", "memory"]
    assert _sources([second], tmp_path) == ["disk cache"]  # read again, from disk this time
    assert count_decodes == {"folder0": 2, "folder1": 2, "folder2": 2}
    # Without its disk cache, the dropped folder is decoded again.
    assert _sources([first], tmp_path) == ["disk cache"]
    for file in (tmp_path / "cache" / "folder0").iterdir():
        file.unlink()
    data.clear_image_cache()
    assert _sources([first], tmp_path) == ["decoded"]
    assert count_decodes["folder0"] == 4
    data.clear_image_cache()


def test_memory_cache_keeps_within_its_byte_bound(tmp_path, monkeypatch, count_decodes):
    data.clear_image_cache()
    one_folder = 2 * 16 * 16 * 3  # two 16 px RGB images
    monkeypatch.setattr(folders, "MEMORY_CACHE_MAX_BYTES", 2 * one_folder, raising=False)
    first, second, third = _small_folders(tmp_path, 3)
    assert _sources([first, second, third], tmp_path) == ["decoded"] * 3
    assert _sources([third, second, first], tmp_path) == ["memory", "memory", "disk cache"]
    assert len(folders._MEMORY_CACHE) == 2
    # A folder larger than the whole bound is still kept while it is the latest one.
    monkeypatch.setattr(folders, "MEMORY_CACHE_MAX_BYTES", 10)
    assert _sources([third, third], tmp_path) == ["disk cache", "memory"]
    assert len(folders._MEMORY_CACHE) == 1
    data.clear_image_cache()


# ---------------------------------------------------------------------------
# Bad entries a folder may hold: broken links, link loops, huge images, a changed cache
# ---------------------------------------------------------------------------


def test_broken_links_and_link_loops_are_skipped_with_reasons(tmp_path):
    data.clear_image_cache()
    root = tmp_path / "pictures"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (20, 20), (200, 10, 10)).save(root / "good.png")
    Image.new("RGB", (20, 20), (10, 200, 10)).save(root / "sub" / "nested.png")
    os.symlink(tmp_path / "gone.png", root / "dangling.png")  # its target does not exist
    os.symlink("loop.png", root / "loop.png")  # points at itself
    os.symlink("..", root / "sub" / "back")  # a folder link back up: a loop when followed
    os.symlink("good.png", root / "alias.png")  # a working link is read like any file
    os.mkfifo(root / "pipe.png")  # reading it would block for ever
    with pytest.warns(UserWarning, match="skipped 4 unreadable"):
        images, report = load_image_folder(root, image_size=16, return_report=True)
    assert report.files == ("alias.png", "good.png", "sub/nested.png") and len(images) == 3
    reasons = dict(report.skipped)
    assert set(reasons) == {"dangling.png", "loop.png", "sub/back", "pipe.png"}
    assert reasons["dangling.png"].startswith("broken symbolic link")
    assert "loop" in reasons["loop.png"] and "loop" in reasons["sub/back"]
    assert reasons["pipe.png"] == "not a regular file"
    data.clear_image_cache()


def test_an_image_with_too_many_pixels_is_skipped_before_it_is_decoded(tmp_path, monkeypatch):
    data.clear_image_cache()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "small.png")
    # 12,000 x 12,000 = 144 megapixels; one bit per pixel keeps the file and this test small
    Image.new("1", (12000, 12000), 1).save(tmp_path / "huge.png")
    decoded = []
    load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or load(self))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own DecompressionBombWarning
        images, report = load_image_folder(tmp_path, image_size=16, return_report=True)
    assert report.files == ("small.png",) and len(images) == 1
    ((name, reason),) = report.skipped
    assert name == "huge.png" and "144 megapixels" in reason and "MAX_IMAGE_PIXELS" in reason
    assert (12000, 12000) not in decoded  # refused from its header
    data.clear_image_cache()


def test_a_changed_disk_cache_is_noticed_and_rebuilt(folder):
    cache = folder.parent / "cache"
    (first, report), _ = _load(folder, image_size=32, cache_dir=cache)
    array_file = report.cache_file
    # the same shape and type, other pixels: only the recorded hash can tell
    np.save(array_file, np.zeros_like(first))
    data.clear_image_cache()
    with pytest.warns(UserWarning) as record:
        again, report = load_image_folder(
            folder, image_size=32, cache_dir=cache, return_report=True
        )
    messages = [str(w.message) for w in record]
    assert any("does not match the hash" in m and str(array_file) in m for m in messages)
    assert report.source == "decoded"
    np.testing.assert_array_equal(again, first)
    # the rewritten cache is used again, silently apart from the skipped files
    data.clear_image_cache()
    (cached, report), _ = _load(folder, image_size=32, cache_dir=cache)
    assert report.source == "disk cache"
    np.testing.assert_array_equal(cached, first)
    # a cache cut short, or of another shape, is rebuilt too
    for damage in (
        lambda: array_file.write_bytes(array_file.read_bytes()[:100]),
        lambda: np.save(array_file, first[:, :16]),
        lambda: np.save(array_file, np.float32(3.0)),
    ):
        damage()
        data.clear_image_cache()
        with pytest.warns(UserWarning) as record:
            again, report = load_image_folder(
                folder, image_size=32, cache_dir=cache, return_report=True
            )
        assert any(f"image cache {array_file}" in str(w.message) for w in record)
        assert report.source == "decoded"
        np.testing.assert_array_equal(again, first)
    data.clear_image_cache()
