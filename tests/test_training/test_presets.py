"""Tests for ganlib/training/presets.py."""

import pytest

from ganlib.training import (
    GAN,
    PRESETS,
)

from ._helpers import conv_gan


def test_presets_name_the_seeds_settings():
    assert PRESETS["improved"]["g_learning_rate"] == 2 * PRESETS["improved"]["d_learning_rate"]
    assert (
        PRESETS["improved_as_run"]["g_learning_rate"]
        == PRESETS["improved_as_run"]["d_learning_rate"]
        == 1e-4
    )
    assert PRESETS["baseline"]["d_learning_rate"] == PRESETS["baseline"]["g_learning_rate"] == 1e-4
    assert PRESETS["cifar"]["d_learning_rate"] == 2e-4 and PRESETS["cifar"]["batch_size"] == 128
    for name in ("improved", "improved_as_run", "cifar", "hybrid"):
        assert PRESETS[name]["beta_1"] == 0.5
    # chapter 4's recipe: the hybrid pair with the cifar pair's optimizer and batch
    assert PRESETS["hybrid"]["model"] == "hybrid"
    for key in ("d_learning_rate", "g_learning_rate", "beta_1", "batch_size", "label_noise"):
        assert PRESETS["hybrid"][key] == PRESETS["cifar"][key]


def test_from_preset_keeps_the_learning_rate_ratio():
    gan = conv_gan()
    d_lr = float(gan.d_optimizer.learning_rate.numpy())
    g_lr = float(gan.g_optimizer.learning_rate.numpy())
    assert g_lr == pytest.approx(2 * d_lr) and d_lr == pytest.approx(1e-4)
    assert float(gan.d_optimizer.beta_1) == 0.5
    assert gan.preset["batch_size"] == 32 and gan.preset["latent_dim"] == 100
    faster = GAN.from_preset("improved", 32, width=0.125, learning_rate=5e-5)
    assert float(faster.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    same = GAN.from_preset("improved_as_run", 32, width=0.125)
    assert float(same.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="unknown preset"):
        GAN.from_preset("dcgan", 32)
