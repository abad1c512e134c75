"""Tests for ganlib/common.py: sizes, value ranges and atomic writes that every part shares."""

import numpy as np
import pytest

from ganlib import common


def test_image_size_checks_follow_one_rule():
    assert common.check_image_size(48) == 48  # loaders: any integer from 16 up
    assert common.check_image_size(np.int64(32), common.IMAGE_SIZES) == 32
    for bad in (8, 15.0, True, "32"):
        with pytest.raises(ValueError, match="at least 16"):
            common.check_image_size(bad)
    with pytest.raises(ValueError, match="32 or 64"):
        common.check_image_size(48, common.IMAGE_SIZES)


@pytest.mark.parametrize(
    ("images", "given", "expected"),
    [
        (np.zeros((1, 2, 2, 3), np.uint8), None, (0.0, 255.0)),
        (np.full((1, 2, 2, 3), -0.5, np.float32), None, (-1.0, 1.0)),
        (np.full((1, 2, 2, 3), 0.5, np.float32), None, (0.0, 1.0)),
        (np.full((1, 2, 2, 3), 0.5, np.float32), (-1, 1), (-1.0, 1.0)),
    ],
)
def test_value_range_is_given_or_guessed(images, given, expected):
    assert common.value_range_of(images, given) == expected


def test_to_uint8_maps_each_range_onto_0_255():
    x = np.array([-1.0, 0.0, 1.0], np.float32).reshape(1, 1, 3, 1)
    np.testing.assert_array_equal(common.to_uint8(x).ravel(), [0, 128, 255])
    np.testing.assert_array_equal(common.to_uint8(x, (-1, 3)).ravel(), [0, 64, 128])
    with pytest.raises(ValueError, match="low < high"):
        common.to_uint8(x, (1, 1))


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.json"
    with common.atomic_write(path, "w") as file:
        file.write("old")
    with pytest.raises(RuntimeError), common.atomic_write(path, "w") as file:
        file.write("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left


def test_atomic_save_gives_the_writer_a_name_with_the_same_suffixes(tmp_path):
    seen = []

    def save(name):
        seen.append(name)
        name.write_text("weights")

    path = common.atomic_save(tmp_path / "net.weights.h5", save)
    assert path.read_text() == "weights"
    assert seen[0].name.endswith(".weights.h5") and seen[0].name.startswith(".net.")
    assert not seen[0].exists()

    def broken(name):
        name.write_text("half")
        raise OSError("killed")

    with pytest.raises(OSError):
        common.atomic_save(path, broken)
    assert path.read_text() == "weights" and len(list(tmp_path.iterdir())) == 1


def test_temporary_names_differ_between_calls(tmp_path):
    names = {common.temporary_name(tmp_path / "a.npz") for _ in range(20)}
    assert len(names) == 20


def test_cache_root_follows_the_argument_then_ganlib_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path / "env"))
    assert common.cache_root() == tmp_path / "env"
    assert common.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("GANLIB_CACHE")
    assert common.cache_root().parts[-2:] == (".cache", "ganlib")
