"""Tests for ganlib/metrics/features.py."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest

from ganlib import metrics
from ganlib.data import FACTOR_NAMES, toy_faces
from ganlib.metrics import kid

# --------------------------------------------------------------------------- KID


def test_inception_features_without_weights_says_what_to_do(monkeypatch):
    def offline(**kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: Name or service not known"
        )

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    with pytest.raises(FileNotFoundError) as info:
        metrics.InceptionFeatures()
    message = str(info.value)
    assert "DomainFeatures" in message
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "weights=" in message


def test_inception_features_missing_weights_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="DomainFeatures"):
        metrics.InceptionFeatures(weights=tmp_path / "nope.h5")


def test_inception_feature_pipeline_with_random_weights():
    extractor = metrics.InceptionFeatures(weights=None, batch_size=1)
    images = np.random.default_rng(7).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    features = extractor(images)
    assert features.shape == (2, 2048) and features.dtype == np.float32
    # The same images as floats in [-1, 1] give the same features.
    again = extractor(images.astype(np.float32) / 127.5 - 1.0, value_range=(-1, 1))
    np.testing.assert_allclose(again, features, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def domain_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ganlib_cache")


@pytest.fixture(scope="module")
def domain(domain_cache):
    """Trained once per test session (the slow test of this file, about half a minute)."""
    return metrics.DomainFeatures(image_size=32, cache_dir=domain_cache)


def test_domain_features_reach_98_percent_on_every_factor(domain):
    assert set(domain.accuracy) == set(FACTOR_NAMES)
    for name, accuracy in domain.accuracy.items():
        assert accuracy >= 0.98, f"{name}: {accuracy:.3f}"


def test_domain_features_load_from_the_cache(domain, domain_cache, monkeypatch):
    def no_training(self, verbose):
        raise AssertionError("should have loaded the cached weights")

    monkeypatch.setattr(metrics.DomainFeatures, "_train", no_training)
    monkeypatch.setenv("GANLIB_CACHE", str(domain_cache))
    again = metrics.DomainFeatures(image_size=32)
    assert again.weights_path == domain.weights_path
    assert again.accuracy == domain.accuracy
    images, _ = toy_faces(8, 32, seed=3)
    np.testing.assert_allclose(again(images), domain(images), rtol=1e-5, atol=1e-5)


def test_domain_features_shapes_sizes_and_value_ranges(domain):
    images, _ = toy_faces(20, 32, seed=4)
    features = domain(images)
    assert features.shape == (20, 128) and features.dtype == np.float32
    as_float = domain(images.astype(np.float32) / 127.5 - 1.0, value_range=(-1, 1))
    np.testing.assert_allclose(as_float, features, rtol=1e-4, atol=1e-4)
    assert domain(images[0]).shape == (1, 128)
    large, _ = toy_faces(20, 64, seed=4)  # resized to the network's 32 px
    assert domain(large).shape == (20, 128)


def test_domain_features_tell_a_collapsed_generator_from_real_faces(domain):
    real, _ = toy_faces(600, 32, seed=10)
    other, _ = toy_faces(600, 32, seed=11)
    faces, factors = toy_faces(3000, 32, seed=12)
    collapsed = faces[factors[:, 0] == 0][:300]  # only black hair
    same = kid(domain(real), domain(other), num_subsets=20, subset_size=300)[0]
    different = kid(domain(real), domain(collapsed), num_subsets=20, subset_size=300)[0]
    assert different > 10 * abs(same)


def test_domain_features_at_64_pixels_and_a_warning_when_undertrained(tmp_path):
    with pytest.warns(UserWarning, match="train longer"):
        small = metrics.DomainFeatures(
            image_size=64, cache_dir=tmp_path, train_size=256, test_size=64, epochs=1
        )
    images, _ = toy_faces(4, 64, seed=0)
    assert small(images).shape == (4, 128)
    assert small.model.input_shape == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="32 or 64"):
        metrics.DomainFeatures(image_size=48, cache_dir=tmp_path)


def _tiny_domain_features(cache_dir, global_seed):
    """A DomainFeatures trained for one short epoch after seeding the global random state."""
    keras.utils.set_random_seed(global_seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too little training: it warns "train longer"
        return metrics.DomainFeatures(
            image_size=32, cache_dir=cache_dir, train_size=256, test_size=64, epochs=1
        )


def test_domain_features_weights_depend_only_on_the_settings(tmp_path, monkeypatch):
    # The untrained network first: every initializer must take its seed from config["seed"].
    built = []
    original_train = metrics.DomainFeatures._train

    def keep_initial_weights(self, verbose):
        built.append([w.copy() for w in self.classifier.get_weights()])
        return original_train(self, verbose)

    monkeypatch.setattr(metrics.DomainFeatures, "_train", keep_initial_weights)
    first = _tiny_domain_features(tmp_path / "a", global_seed=1)
    second = _tiny_domain_features(tmp_path / "b", global_seed=2)
    keras.utils.set_random_seed(0)
    assert first.weights_path.name == second.weights_path.name
    for before, after in zip(built[0], built[1], strict=True):
        np.testing.assert_array_equal(before, after)
    # Then the trained one: the training order must not depend on the global state either.
    for a, b in zip(first.classifier.get_weights(), second.classifier.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.accuracy == second.accuracy


def test_load_or_train_trains_once_per_config_and_reloads_the_weights(tmp_path):
    from ganlib.metrics.features import load_or_train

    def network():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    calls = []

    def train_into(model):
        def train():
            calls.append(1)
            model.layers[0].kernel.assign(np.full((3, 2), 0.5, "float32"))
            return {"accuracy": 0.9}

        return train

    first = network()
    info, weights, _ = load_or_train(first, {"a": 1}, "tiny", train_into(first), tmp_path)
    assert info == {"accuracy": 0.9} and weights.is_file() and len(calls) == 1
    second = network()  # fresh random weights, replaced by the cached ones
    info, _, _ = load_or_train(second, {"a": 1}, "tiny", train_into(second), tmp_path)
    assert len(calls) == 1 and info == {"accuracy": 0.9}
    np.testing.assert_array_equal(second.layers[0].kernel.numpy(), np.full((3, 2), 0.5))
    third = network()
    _, other, _ = load_or_train(third, {"a": 2}, "tiny", train_into(third), tmp_path)
    assert len(calls) == 2 and other != weights


# A process that needs a cached network: it says it is ready, waits for "go" (so that two
# of them ask at the same moment), then loads or trains a Dense layer whose kernel is
# filled with its own number, taking `seconds` to train. It prints the info and kernel.
_CACHE_USER = """
import json, sys, time
from pathlib import Path
import keras
import numpy as np
from ganlib.metrics.features import load_or_train

cache, number, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

def train():
    with open(cache.parent / "trained", "a") as log:
        log.write(f"{number}\\n")
    time.sleep(seconds)
    network.layers[0].kernel.assign(np.full((3, 2), number, "float32"))
    return {"trained_by": number}

(cache.parent / f"ready-{number}").touch()
while not (cache.parent / "go").exists():
    time.sleep(0.01)
info, _, _ = load_or_train(network, {"a": 1}, "tiny", train, cache)
print(json.dumps({"info": info, "kernel": network.layers[0].kernel.numpy().tolist()}))
"""


def _cache_users(tmp_path, numbers, seconds):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    users = [
        subprocess.Popen(
            [sys.executable, "-c", _CACHE_USER, str(tmp_path / "cache"), str(n), str(seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in numbers
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{n}").exists() for n in numbers):
        assert time.monotonic() < deadline and all(u.poll() is None for u in users), [
            u.communicate()[1][-2000:] for u in users if u.poll() is not None
        ]
        time.sleep(0.05)
    (tmp_path / "go").touch()
    return users


def test_two_processes_needing_the_same_network_at_once_train_it_once(tmp_path):
    # Two test workers, or two notebooks, starting on an empty cache.
    results = []
    for user in _cache_users(tmp_path, (1, 2), seconds=2):
        out, err = user.communicate(timeout=120)
        assert user.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    trained = (tmp_path / "trained").read_text().split()
    assert len(trained) == 1, f"trained by {trained}: the second process did not wait"
    first = int(trained[0])
    for result in results:  # the other one waited and loaded what the first one wrote
        assert result["info"] == {"trained_by": first}
        np.testing.assert_array_equal(result["kernel"], np.full((3, 2), first))


def test_a_trainer_killed_midway_leaves_the_cache_to_the_next_process(tmp_path):
    from ganlib.metrics.features import load_or_train

    (holder,) = _cache_users(tmp_path, (1,), seconds=600)
    deadline = time.monotonic() + 60
    while not (tmp_path / "trained").exists():  # it holds the lock and trains
        assert time.monotonic() < deadline and holder.poll() is None
        time.sleep(0.05)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    started = time.monotonic()
    info, weights, _ = load_or_train(
        network, {"a": 1}, "tiny", lambda: {"trained_by": 3}, tmp_path / "cache"
    )
    assert info == {"trained_by": 3} and weights.is_file()
    assert time.monotonic() - started < 30  # did not wait for the killed process
