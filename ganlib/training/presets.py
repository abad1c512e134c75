"""The book's named run settings, as read-only RunSpecs named after where they come from (chapter 3)."""

from __future__ import annotations

from types import MappingProxyType

from ganlib.training.spec import RunSpec, plain_options, positive_finite


def _named(name, model, d_learning_rate, g_learning_rate, beta_1, batch_size, **rest):
    return RunSpec(
        model=model,
        d_learning_rate=d_learning_rate,
        g_learning_rate=g_learning_rate,
        beta_1=beta_1,
        batch_size=batch_size,
        preset=name,
        **rest,
    )


# name: model family, Adam's learning rates (D, G) and beta_1, real images per update.
PRESETS = MappingProxyType(
    {
        "mlp": _named("mlp", "mlp", 2e-4, 2e-4, 0.5, 64),
        "baseline": _named("baseline", "baseline", 1e-4, 1e-4, 0.9, 32, label_noise=0.05),
        "improved": _named("improved", "improved", 1e-4, 2e-4, 0.5, 32),
        "improved_as_run": _named("improved_as_run", "improved", 1e-4, 1e-4, 0.5, 32),
        "cifar": _named("cifar", "cifar", 2e-4, 2e-4, 0.5, 128),
        # Chapter 4's quick recipe: the hybrid pair trained exactly as the cifar pair is.
        "hybrid": _named("hybrid", "hybrid", 2e-4, 2e-4, 0.5, 128),
    }
)

# Where each preset's settings come from, as the chapters cite them.
PRESET_SOURCES = MappingProxyType(
    {
        "mlp": "chapter 1's dense GAN with the DCGAN paper's Adam settings (2e-4, beta_1 0.5)",
        "baseline": "the Keras CelebA example: Adam(learning_rate=0.0001) for both networks "
        "with Keras's default beta_1 (0.9), 0.05 uniform noise on the labels",
        "improved": "the anime-face DCGAN project's write-up: Adam with beta_1 0.5, the "
        "generator's learning rate twice the discriminator's",
        "improved_as_run": "what the anime-face DCGAN project's notebook ran: Adam 1e-4 and "
        "beta_1 0.5 for both networks",
        "cifar": "the CIFAR DCGAN project: Adam 2e-4 for both networks, batch 128 "
        "(beta_1 0.5, the DCGAN paper's value)",
        "hybrid": "chapter 4's quick recipe: the improved generator against the CIFAR DCGAN "
        "project's discriminator, with that project's optimizer (Adam 2e-4, beta_1 0.5, "
        "batch 128)",
    }
)


def preset_spec(name, learning_rate=None, spectral_norm=False, minibatch_std=False, **changes):
    """PRESETS[name] with `changes` (RunSpec settings), as `train` and `GAN.from_preset` read them (chapter 5).

    learning_rate sets the discriminator's rate and keeps the preset's ratio for the
    generator's (unless g_learning_rate is given). With a loss other than "bce" the
    preset's label smoothing and label noise are dropped (tricks of that loss) unless
    given; label_smoothing=None keeps the preset's. spectral_norm and minibatch_std
    join model_options.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; choose one of the presets {', '.join(PRESETS)}")
    base = PRESETS[name]
    if learning_rate is not None:
        if not positive_finite(learning_rate):
            raise ValueError(
                f"learning_rate must be a positive finite number (e.g. 2e-4), got {learning_rate!r}"
            )
        changes.setdefault("d_learning_rate", float(learning_rate))
        changes.setdefault(
            "g_learning_rate", float(learning_rate) * base.g_learning_rate / base.d_learning_rate
        )
    if changes.get("loss", base.loss) != "bce":
        changes.setdefault("label_smoothing", 0.0)
        changes.setdefault("label_noise", 0.0)
    if "label_smoothing" in changes and changes["label_smoothing"] is None:
        del changes["label_smoothing"]  # None: the preset's
    options = changes.pop("model_options", None)
    options = dict(base.model_options if options is None else plain_options(options))
    for flag, on in (("spectral_norm", spectral_norm), ("minibatch_std", minibatch_std)):
        if on:
            options[flag] = True
    return base.replace(model_options=options, preset=name, **changes)


def run_info_spec(info):
    """The RunSpec of a run.json dict (`read_run_info`): its "spec", or the older flat layout (chapter 5).

    run.json files written before RunSpec (flat settings beside a "preset" dict of the
    optimizer settings) map to the spec they trained, with the defaults then in force
    for anything they lack.
    """
    if "spec" in info:
        return RunSpec.from_json(info["spec"])
    get = lambda key: info.get(key, _FLAT_DEFAULTS.get(key))  # noqa: E731
    name = info["model"]
    preset = info.get("preset")
    if not isinstance(preset, dict):
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r} in a run record")
        preset = PRESETS[name].to_json()
    bce = get("loss") == "bce"
    smoothing = get("label_smoothing")
    if smoothing is None:
        smoothing = preset.get("label_smoothing", 0.0) if bce else 0.0
    options = dict(get("model_options") or {})
    for flag in ("spectral_norm", "minibatch_std"):
        if get(flag):
            options[flag] = True
    ada_options = info.get("ada_options") or {}
    return RunSpec(
        model=info.get("family") or preset["model"],
        image_size=info["image_size"],
        width=info["width"],
        latent_dim=info["latent_dim"],
        model_options=options,
        batch_size=info.get("batch_size", preset["batch_size"]),
        d_learning_rate=preset["d_learning_rate"],
        g_learning_rate=preset["g_learning_rate"],
        beta_1=preset["beta_1"],
        loss=get("loss"),
        gp_weight=get("gp_weight"),
        r1_gamma=get("r1_gamma"),
        label_smoothing=smoothing,
        label_noise=preset.get("label_noise", 0.0) if bce else 0.0,
        update_scheme=get("update_scheme"),
        ema=get("ema"),
        ada=bool(get("ada")),
        ada_target=ada_options.get("target_accuracy"),
        ada_integration_steps=ada_options.get("integration_steps"),
        steps_per_epoch=info.get("steps_per_epoch"),
        seed=info.get("seed", 0),
        data=info.get("data_spec"),
        preset=name,
    )


# What a flat run.json written before a key was recorded stands for: the default then.
_FLAT_DEFAULTS = {
    "spectral_norm": False,
    "minibatch_std": False,
    "model_options": {},
    "loss": "bce",
    "gp_weight": 10.0,
    "r1_gamma": 0.0,
    "label_smoothing": None,
    "update_scheme": "ganlib",
    "ema": None,
    "ada": False,
}
