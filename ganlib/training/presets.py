"""Optimizer and batch settings of the book's models, named after where they come from (chapter 3)."""

from __future__ import annotations

# Optimizer and batch settings named after where they come from. Learning rates are
# Adam's; `batch_size` is the number of real images per update.
PRESETS = {
    "mlp": {
        "model": "mlp",
        "d_learning_rate": 2e-4,
        "g_learning_rate": 2e-4,
        "beta_1": 0.5,
        "batch_size": 64,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "chapter 1's dense GAN with the DCGAN paper's Adam settings (2e-4, beta_1 0.5)",
    },
    "baseline": {
        "model": "baseline",
        "d_learning_rate": 1e-4,
        "g_learning_rate": 1e-4,
        "beta_1": 0.9,
        "batch_size": 32,
        "label_smoothing": 0.0,
        "label_noise": 0.05,
        "source": "the Keras CelebA example: Adam(learning_rate=0.0001) for both networks "
        "with Keras's default beta_1 (0.9), 0.05 uniform noise on the labels",
    },
    "improved": {
        "model": "improved",
        "d_learning_rate": 1e-4,
        "g_learning_rate": 2e-4,
        "beta_1": 0.5,
        "batch_size": 32,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "the anime-face DCGAN project's write-up: Adam with beta_1 0.5, the generator's learning "
        "rate twice the discriminator's",
    },
    "improved_as_run": {
        "model": "improved",
        "d_learning_rate": 1e-4,
        "g_learning_rate": 1e-4,
        "beta_1": 0.5,
        "batch_size": 32,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "what the anime-face DCGAN project's notebook ran: Adam 1e-4 and beta_1 0.5 "
        "for both networks",
    },
    "cifar": {
        "model": "cifar",
        "d_learning_rate": 2e-4,
        "g_learning_rate": 2e-4,
        "beta_1": 0.5,
        "batch_size": 128,
        "label_smoothing": 0.0,
        "label_noise": 0.0,
        "source": "the CIFAR DCGAN project: Adam 2e-4 for both networks, batch 128 "
        "(beta_1 0.5, the DCGAN paper's value)",
    },
}
# Chapter 4's quick recipe: the hybrid pair trained exactly as the cifar pair is.
PRESETS["hybrid"] = {
    **PRESETS["cifar"],
    "model": "hybrid",
    "source": "chapter 4's quick recipe: the improved generator against the CIFAR DCGAN "
    "project's discriminator, with that project's optimizer (Adam 2e-4, beta_1 0.5, batch 128)",
}
