"""ganlib: the reusable parts of the GAN book.

One module per idea: `data` (datasets and input pipelines), `models` (generators
and discriminators), `training` (the GAN model, runs, checkpoints), `metrics`
(KID, FID, mode coverage), `augment` (adaptive augmentation), `postprocess`
(upscaling, denoising, best-n) and `plotting` (image grids). Submodules load on
first use, so `import ganlib` stays fast and TensorFlow is imported only when a
part that needs it is used.
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
