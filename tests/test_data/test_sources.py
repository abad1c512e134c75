"""Tests for ganlib/data/sources.py."""

import numpy as np
import pytest
from PIL import Image

from ganlib.data import (
    DataNotFoundError,
    load_source,
    toy_faces,
)

from .test_cifar10 import _write_cifar

# ---------------------------------------------------------------------------
# Toy faces
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
