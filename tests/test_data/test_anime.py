"""Tests for ganlib/data/anime.py: folders are built in tmp_path; nothing is downloaded."""

import sys
import types

import pytest
from PIL import Image

from ganlib import data
from ganlib.data import (
    DataNotFoundError,
    anime_faces,
    folders,
)

# ---------------------------------------------------------------------------
# Toy faces
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


def test_anime_subset_picks_the_first_files_in_natural_order(tmp_path, monkeypatch):
    data.clear_image_cache()
    names = ["10_2000.jpg", "2_2000.jpg", "0_2000.jpg", "1_2001.jpg", "11_2003.jpg", "3_2002.jpg"]
    root = _anime_folder(tmp_path / "anime", names)
    read = []
    original = folders._read_image

    def counting(path, *args):
        read.append(path.name)
        return original(path, *args)

    monkeypatch.setattr(folders, "_read_image", counting)
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
    data.clear_image_cache()
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


def _anime_folder(root, names):
    images = root / "images"
    images.mkdir(parents=True)
    for i, name in enumerate(names):
        Image.new("RGB", (48, 48), (i * 20 % 256, 100, 150)).save(images / name)
    return root
