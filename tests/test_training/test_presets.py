"""Tests for ganlib/training/presets.py."""

import keras
import pytest

from ganlib import models
from ganlib.training import GAN, PRESET_SOURCES, PRESETS, RunSpec

from ._helpers import conv_gan


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_from_preset_trains_with_every_setting_of_its_preset(name):
    """What a preset names is what the GAN it builds trains with: optimizers, label tricks, models."""
    preset = PRESETS[name]
    gan = GAN.from_preset(name, 32, width=0.125, jit_compile=False)
    for optimizer, rate in (
        (gan.d_optimizer, preset.d_learning_rate),
        (gan.g_optimizer, preset.g_learning_rate),
    ):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate.numpy()) == pytest.approx(rate)
        assert float(optimizer.beta_1) == pytest.approx(preset.beta_1)
    assert gan.label_smoothing == preset.label_smoothing
    assert gan.label_noise == preset.label_noise
    generator, discriminator = models.build_pair(preset.model, 32, width=0.125)
    assert gan.generator.count_params() == generator.count_params()
    assert gan.discriminator.count_params() == discriminator.count_params()
    assert gan.spec == preset.replace(image_size=32, width=0.125)
    assert gan.spec.preset == name and PRESET_SOURCES[name]


def test_from_preset_keeps_the_learning_rate_ratio():
    gan = conv_gan()
    d_lr = float(gan.d_optimizer.learning_rate.numpy())
    g_lr = float(gan.g_optimizer.learning_rate.numpy())
    assert g_lr == pytest.approx(2 * d_lr) and d_lr == pytest.approx(1e-4)
    assert float(gan.d_optimizer.beta_1) == 0.5
    assert gan.spec.batch_size == 32 and gan.spec.latent_dim == 100
    faster = GAN.from_preset("improved", 32, width=0.125, learning_rate=5e-5)
    assert float(faster.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    same = GAN.from_preset("improved_as_run", 32, width=0.125)
    assert float(same.g_optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="unknown model 'dcgan'"):
        GAN.from_preset("dcgan", 32)


def test_presets_are_read_only_specs():
    """A chapter's variant is a new spec: the named presets themselves cannot change."""
    assert all(isinstance(spec, RunSpec) for spec in PRESETS.values())
    assert set(PRESET_SOURCES) == set(PRESETS)
    with pytest.raises(TypeError):
        PRESETS["improved_controlled"] = PRESETS["improved"]
    with pytest.raises(AttributeError):
        PRESETS["improved"].d_learning_rate = 1.0
    variant = PRESETS["improved"].replace(g_learning_rate=1e-4)
    assert variant.g_learning_rate == 1e-4 and PRESETS["improved"].g_learning_rate == 2e-4
