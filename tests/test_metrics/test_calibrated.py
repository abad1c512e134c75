"""Tests for ganlib/metrics/calibrated.py.

The decoder is trained once into a temporary cache (module fixture). Every test
draws its own faces and non-faces with seeds far from the ones the decoder
trains (seed 0) and calibrates (seed 1,000,003) on, and degrades them with its
own code (scipy, Pillow), not the library's.
"""

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from ganlib.data import FACTOR_NAMES, toy_faces
from ganlib.data.toy_faces import FACTOR_SIZES
from ganlib.metrics import CalibratedDecoder, mode_coverage

N_FACES = 500
N_NON_FACES = 300


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    return CalibratedDecoder(image_size=32, cache_dir=tmp_path_factory.mktemp("calibrated"))


def _blur(images, sigma):
    blurred = gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0), mode="nearest")
    return np.clip(np.round(blurred), 0, 255).astype(np.uint8)


def _noise(images, sigma, seed):
    # sigma in [-1, 1] units: 127.5 on the 0..255 scale
    noise = np.random.default_rng(seed).normal(0, sigma * 127.5, images.shape)
    return np.clip(np.round(images + noise), 0, 255).astype(np.uint8)


def _jpeg(images, quality):
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)


DEGRADATIONS = {
    "blur sigma 1 px": lambda x: _blur(x, 1.0),
    "noise sigma 0.1": lambda x: _noise(x, 0.1, seed=424_242),
    "jpeg quality 50": lambda x: _jpeg(x, 50),
}


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_reads_degraded_real_faces(decoder, name):
    faces, factors = toy_faces(N_FACES, 32, seed=777_001)
    codes = decoder(DEGRADATIONS[name](faces))
    accepted = (codes >= 0).all(axis=1)
    assert ((codes >= 0).all(axis=1) | (codes < 0).all(axis=1)).all()  # whole rows refused
    assert accepted.mean() >= 0.95, f"{name}: accepted {accepted.mean():.3f}"
    for i, factor in enumerate(FACTOR_NAMES):
        accuracy = np.mean(codes[accepted, i] == factors[accepted, i])
        assert accuracy >= 0.98, f"{name}: {factor} accuracy {accuracy:.3f}"


def test_reads_clean_faces_at_any_value_range(decoder):
    faces, factors = toy_faces(200, 32, seed=777_002)
    codes = decoder(faces)
    assert codes.dtype == np.int64 and codes.shape == (200, 5)
    assert np.mean(codes == factors) >= 0.99
    as_tanh = decoder(faces.astype(np.float32) / 127.5 - 1, value_range=(-1, 1))
    assert np.mean(as_tanh == codes) >= 0.99
    # 64 px images are resized to the decoder's 32 px
    big, big_factors = toy_faces(100, 64, seed=777_003)
    assert np.mean(decoder(big) == big_factors) >= 0.98


def _uniform_noise(rng, n):
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _blank(rng, n):
    values = np.resize(np.array([0, 255, 128, 64, 200], np.uint8), n)
    return np.broadcast_to(values[:, None, None, None], (n, 32, 32, 3)).copy()


def _single_colour(rng, n):
    colours = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    # every palette colour too: a background alone is not a face
    from ganlib.data.toy_faces import BACKGROUNDS, HAIR_COLOURS, SKIN_TONES

    palette = np.array([*BACKGROUNDS.values(), *HAIR_COLOURS.values(), *SKIN_TONES.values()])
    colours[: len(palette)] = palette
    return np.broadcast_to(colours[:, None, None], (n, 32, 32, 3)).copy()


def _smooth_blobs(rng, n):
    noise = rng.normal(128, 128, (n, 32, 32, 3))
    sigmas = rng.uniform(2, 6, n)
    blobs = [gaussian_filter(x, (s, s, 0), mode="wrap") for x, s in zip(noise, sigmas, strict=True)]
    # stretch the contrast back, as smooth images from a generator would have
    blobs = [(b - b.mean()) * 60 / (b.std() + 1e-6) + 128 for b in blobs]
    return np.clip(np.stack(blobs), 0, 255).astype(np.uint8)


def _stripes(rng, n):
    yy, xx = np.mgrid[0:32, 0:32]
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 16)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        a, b = rng.integers(0, 256, (2, 3))
        out[i] = np.where((phase % 1 < 0.5)[..., None], a, b)
    return out


def _tiles(grid):
    def make(rng, n):
        faces, _ = toy_faces(n, 32, seed=int(rng.integers(10**6, 10**7)))
        step = 32 // grid
        tiles = faces.reshape(n, grid, step, grid, step, 3).transpose(0, 1, 3, 2, 4, 5)
        tiles = tiles.reshape(n, grid * grid, step, step, 3)
        out = np.empty_like(tiles)
        for i in range(n):
            order = rng.permutation(grid * grid)
            while (order == np.arange(grid * grid)).any():  # every tile moves
                order = rng.permutation(grid * grid)
            out[i] = tiles[i, order]
        out = out.reshape(n, grid, grid, step, step, 3).transpose(0, 1, 3, 2, 4, 5)
        return out.reshape(n, 32, 32, 3)

    return make


NON_FACES = {
    "uniform noise": _uniform_noise,
    "blank": _blank,
    "single colour": _single_colour,
    "smooth blobs": _smooth_blobs,
    "stripes": _stripes,
    "shuffled 4x4 tiles": _tiles(4),
    "shuffled 2x2 tiles": _tiles(2),
}


@pytest.mark.parametrize("name", list(NON_FACES))
def test_refuses_non_faces(decoder, name):
    rng = np.random.default_rng(888_000 + list(NON_FACES).index(name))
    codes = decoder(NON_FACES[name](rng, N_NON_FACES))
    refused = (codes == -1).all(axis=1)
    assert refused.mean() >= 0.99, f"{name}: refused {refused.mean():.3f}"


def test_cache_reloads_the_same_decoder(decoder, tmp_path_factory):
    again = CalibratedDecoder(image_size=32, cache_dir=decoder.weights_path.parent)
    assert again.thresholds == decoder.thresholds
    faces, _ = toy_faces(50, 32, seed=777_004)
    noisy = _noise(faces, 0.1, seed=5)
    np.testing.assert_array_equal(again(noisy), decoder(noisy))
    assert decoder.calibration["face_acceptance"] >= 0.95
    assert decoder.calibration["non_face_refusal"] >= 0.99


def test_mode_coverage_with_the_calibrated_decoder(decoder):
    faces, _ = toy_faces(2000, 32, seed=777_005)
    strict = mode_coverage(faces)
    calibrated = mode_coverage(faces, decoder=decoder)
    assert strict["decoder"] == "strict" and calibrated["decoder"] == "calibrated"
    assert calibrated["unrecognised"] < 0.02
    assert calibrated["coverage"] == pytest.approx(strict["coverage"], abs=0.02)
    assert calibrated["kl_from_uniform"] == pytest.approx(strict["kl_from_uniform"], abs=0.05)
    # where the strict decoder reads noisy faces poorly, the calibrated one still reads them
    noisy = _noise(faces[:500], 0.1, seed=6)
    assert mode_coverage(noisy, decoder=decoder)["unrecognised"] < 0.05
    with pytest.raises(ValueError, match="decoder"):
        mode_coverage(faces, decoder="lenient")


def test_guesses_are_the_codes_of_accepted_images_and_a_guess_for_refused_ones(decoder):
    faces, _ = toy_faces(100, 32, seed=777_006)
    rng = np.random.default_rng(888_100)
    images = np.concatenate([faces, NON_FACES["uniform noise"](rng, 100)])
    result = decoder.predict(images)
    accepted = result["accepted"]
    np.testing.assert_array_equal(result["guesses"][accepted], result["codes"][accepted])
    assert (result["codes"][~accepted] == -1).all()
    # a refused image still gets a guess: one valid value per factor
    assert (~accepted).sum() >= 99
    assert ((result["guesses"] >= 0) & (result["guesses"] < np.array(FACTOR_SIZES))).all()
    empty = decoder.predict(np.zeros((0, 32, 32, 3), np.uint8))
    assert empty["guesses"].shape == (0, len(FACTOR_NAMES))
