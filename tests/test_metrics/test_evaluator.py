"""Tests for ganlib/metrics/evaluator.py: the Evaluator against direct calls of the metrics."""

import math
import subprocess
import sys

import numpy as np
import pytest

from ganlib import metrics
from ganlib.common import to_uint8
from ganlib.data import toy_faces
from ganlib.metrics import Evaluator
from ganlib.recorded import MEASURED


def colour_features(images, value_range=None):
    """A cheap extractor: mean colour and its spread per channel (6 dimensions)."""
    pixels = to_uint8(images, value_range).reshape(len(images), -1, 3).astype(np.float32) / 255.0
    return np.concatenate([pixels.mean(axis=1), pixels.std(axis=1)], axis=1)


class SixFeatures:
    """An extractor that says its dimension, as InceptionFeatures and DomainFeatures do."""

    feature_dim = 6

    def __call__(self, images, value_range=None):
        return colour_features(images, value_range)


@pytest.fixture(scope="module")
def sets():
    """Real features (150 toy faces) and 90 generated-like images in [-1, 1], a third flat."""
    real, _ = toy_faces(150, 32, seed=5)
    faces, _ = toy_faces(90, 32, seed=9)
    noise = np.random.default_rng(0).normal(0.0, 0.1, faces.shape)
    images = np.clip(faces / 127.5 - 1.0 + noise, -1.0, 1.0).astype(np.float32)
    images[::3] = 0.2
    strip = np.zeros((32, 32), bool)
    strip[-4:] = True
    return colour_features(real), images, strip


def test_every_measurement_equals_the_metric_called_directly(sets):
    real_features, images, strip = sets
    value_range = (-1.0, 1.0)
    evaluator = Evaluator(
        real_features,
        colour_features,
        decoder="strict",
        k=3,
        kid_subsets=7,
        kid_subset_size=40,
        strip=strip,
        seed=4,
    )
    values = evaluator.measure(images, value_range)
    assert tuple(values) == Evaluator.KEYS and all(type(v) is float for v in values.values())
    fake = colour_features(images, value_range)
    assert (values["kid"], values["kid_std"]) == metrics.kid(real_features, fake, 7, 40, seed=4)
    scores = metrics.prdc(real_features, fake, k=3)
    for key in ("precision", "recall", "density"):
        assert values[key] == scores[key], key
    assert values["nn_coverage"] == scores["coverage"]
    result = metrics.mode_coverage(images, value_range, decoder="strict")
    for key in ("coverage", "kl_from_uniform", "unrecognised", "variety"):
        assert values[key] == result[key], key
    assert values["blank_share"] == metrics.blank_share(images, value_range) == pytest.approx(1 / 3)
    assert values["strip_roughness"] == metrics.roughness_ratio(images, strip, value_range)
    # The whole mode_coverage result stays at hand, histograms included.
    for name, counts in result["histograms"].items():
        np.testing.assert_array_equal(evaluator.last_coverage["histograms"][name], counts)


def test_half_the_smaller_set_is_a_subset_size_rule(sets):
    real_features, images, _ = sets
    evaluator = Evaluator(real_features, colour_features, kid_subsets=10, kid_subset_size="half")
    fake = colour_features(images[:30], None)
    values = evaluator.measure(images[:30])
    # 30 samples against 150 real: subsets of 15, both sides drawn anew for each of 10
    assert (values["kid"], values["kid_std"]) == metrics.kid(real_features, fake, 10, 15, seed=0)
    assert values["kid_std"] > 0
    # 3 samples: half is 1, raised to the least kid accepts
    three = colour_features(images[:3], None)
    assert evaluator.measure(images[:3])["kid"] == metrics.kid(real_features, three, 10, 2)[0]


def test_what_is_not_set_up_is_nan(sets):
    real_features, images, _ = sets
    bare = Evaluator().measure(images, (-1.0, 1.0))
    assert tuple(bare) == Evaluator.KEYS
    assert bare["blank_share"] == pytest.approx(1 / 3)
    assert all(math.isnan(v) for k, v in bare.items() if k != "blank_share")
    assert Evaluator().last_coverage is None
    no_prdc = Evaluator(real_features, colour_features, k=None).measure(images)
    assert math.isfinite(no_prdc["kid"]) and math.isnan(no_prdc["precision"])
    assert math.isnan(no_prdc["coverage"]) and math.isnan(no_prdc["strip_roughness"])
    # prdc needs more than k points on each side: with 5 samples and k=5 it is nan, KID is not
    few = Evaluator(real_features, colour_features, k=5, kid_subset_size="half").measure(images[:5])
    assert math.isfinite(few["kid"])
    assert all(math.isnan(few[key]) for key in ("precision", "recall", "density", "nn_coverage"))


def test_the_callers_columns_are_among_its_keys():
    assert set(MEASURED) <= set(Evaluator.KEYS)
    assert {"kid", "kid_std", "coverage", "kl_from_uniform"} <= set(Evaluator.KEYS)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(real_features=np.zeros((4, 6))), "give both real_features and extractor"),
        (dict(extractor=colour_features), "give both real_features and extractor"),
        (dict(real_features=np.zeros((4, 5)), extractor=SixFeatures()), "with this same extractor"),
        (
            dict(real_features=np.zeros(6), extractor=colour_features),
            r"pass extractor\(real_images\)",
        ),
        (dict(real_features=np.zeros((1, 6)), extractor=colour_features), "at least 2"),
        (
            dict(real_features=np.full((4, 6), np.nan), extractor=colour_features),
            "compute them again",
        ),
        (dict(real_features=np.zeros((4, 6)), extractor="domain"), "must be callable"),
        (dict(k=0), "None to skip precision and recall"),
        (dict(k=2.5), "k must be a whole number"),
        (dict(k=True), "k must be a whole number"),
        (dict(kid_subsets=0), "kid_subsets must be a whole number of at least 1"),
        (dict(kid_subset_size=1), 'at least 2 or "half"'),
        (dict(kid_subset_size="quarter"), 'at least 2 or "half"'),
        (dict(decoder="fuzzy"), 'decoder must be "strict", "calibrated"'),
        (dict(strip=np.zeros((32, 16), bool)), "pass None to skip strip_roughness"),
        (dict(strip=np.zeros((32, 32), bool)), "region must hold some"),
        (dict(seed=-1), "seed must be a whole number >= 0 or None"),
    ],
)
def test_bad_settings_are_refused_with_what_to_do(arguments, message):
    with pytest.raises(ValueError, match=message):
        Evaluator(**arguments)


def test_it_measures_without_tensorflow():
    script = """
import sys
import numpy as np
from ganlib.data import toy_faces
from ganlib.metrics import Evaluator
images = toy_faces(20, 32, seed=1)[0]
features = lambda x, value_range=None: x.reshape(len(x), -1)[:, :8].astype(float)
values = Evaluator(features(images), features, decoder="strict", k=3).measure(images)
assert values["unrecognised"] == 0.0 and np.isfinite(values["precision"])
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
