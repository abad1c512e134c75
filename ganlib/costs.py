"""What a model costs to run: multiply-adds per image and per GAN update (chapters 2 and 3).

Counted from each layer's kernel shape and output shape, so only Dense, Conv2D and
Conv2DTranspose layers count: batch normalisation, activations, upsampling and
pooling cost a few operations per value, not per weight. A multiply-add is two
floating-point operations. NumPy only: layers are recognised by their class name,
so this module does not import Keras or TensorFlow.
"""

from __future__ import annotations

import numpy as np

__all__ = ["multiply_adds", "model_multiply_adds", "update_multiply_adds", "COUNTED_LAYERS"]

# Layer classes that are counted; a layer of any other class counts 0.
COUNTED_LAYERS = ("Dense", "Conv2D", "Conv2DTranspose")


def multiply_adds(layer) -> int:
    """Multiply-adds for one image through `layer` (Dense, Conv2D, Conv2DTranspose; else 0) (chapter 2).

    Dense: n_in * n_out. Conv2D: h_out * w_out * kh * kw * c_in * c_out.
    Conv2DTranspose: (h_out * w_out / stride**2) * kh * kw * c_in * c_out, one copy of
    the kernel per input pixel. The layer must be built (part of a built model).
    """
    kind = type(layer).__name__
    if kind not in COUNTED_LAYERS:
        return 0
    weights = int(np.prod(layer.kernel.shape))  # kh*kw*c_in*c_out, or n_in*n_out
    if kind == "Dense":
        # A Dense layer on a feature map (h, w, c_in) runs at every position.
        positions = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
        return positions * weights
    positions = int(np.prod(layer.output.shape[1:3]))  # output pixels
    if kind == "Conv2DTranspose":
        positions //= int(np.prod(layer.strides))  # one stamp per input pixel
    return positions * weights


def model_multiply_adds(model) -> int:
    """Multiply-adds for one image through a built Keras model's forward pass (chapter 3).

    The sum of `multiply_adds` over model.layers (nested models are entered).
    """
    if not hasattr(model, "layers"):
        raise ValueError(
            f"expected a built Keras model with .layers, got {type(model).__name__}; "
            "build it first, e.g. ganlib.models.build_pair(...)"
        )
    total = 0
    for layer in model.layers:
        total += model_multiply_adds(layer) if hasattr(layer, "layers") else multiply_adds(layer)
    return total


def update_multiply_adds(generator, discriminator, batch_size) -> dict:
    """Multiply-adds of one GAN update (a discriminator step and a generator step) (chapter 3).

    Convention, for batch_size real images and as many noise vectors in each step (as
    ganlib.training.GAN does): a backward pass costs twice its forward pass when
    weight gradients are needed and once when only the gradient with respect to the
    input passes through. Discriminator step: generator forward (no gradient) + D
    forward and backward on real and fake = B * (G + 6 D). Generator step: G forward
    and backward + D forward + D's input gradient = B * (3 G + 2 D). Returns a dict:
    generator and discriminator (per image, forward), d_step, g_step and update.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a whole number of images >= 1, got {batch_size!r}")
    g = model_multiply_adds(generator)
    d = model_multiply_adds(discriminator)
    d_step = batch_size * (g + 6 * d)
    g_step = batch_size * (3 * g + 2 * d)
    return {
        "generator": g,
        "discriminator": d,
        "d_step": d_step,
        "g_step": g_step,
        "update": d_step + g_step,
    }
