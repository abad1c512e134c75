"""ganlib: the reusable parts of the GAN book.

One package or module per idea, one file per concept inside a package:
`data` (toy faces, their decoder, image folders, CIFAR-10, anime faces, tf.data
pipelines), `models` (generators and discriminators), `training` (the GAN model,
presets, callbacks, checkpoints, history, runs, devices), `metrics` (KID and FID,
feature extractors, mode coverage, a KID callback), `augment` (adaptive
augmentation), `postprocess` (upscaling, denoising, best-n), `grids` and
`plotting` (pictures), `cli` (``python -m ganlib``) and `common` (what they all
share). Submodules load on first use, so `import ganlib` stays fast and
TensorFlow is imported only when a part that needs it is used.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "common",
    "data",
    "models",
    "training",
    "metrics",
    "augment",
    "postprocess",
    "grids",
    "plotting",
    "experiments",
    "recorded",
    "costs",
    "cli",
)
# Top-level shortcuts: name -> module that defines it.
_SHORTCUTS = {"train": "training", "build_pair": "models", "toy_faces": "data"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"ganlib.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(f"ganlib.{_SHORTCUTS[name]}"), name)
    raise AttributeError(f"module 'ganlib' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBMODULES, *_SHORTCUTS])
