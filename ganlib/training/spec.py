"""`RunSpec`: everything that decides what a run trains, in one checked object (chapter 5).

A spec is frozen and checked completely when it is made, before anything touches the
disk; `replace(...)` makes a variant (checked again), `differences(other)` names every
setting two specs disagree on (a resume uses it), and `to_json`/`from_json` save it
in and read it from a run folder's run.json. The named presets (presets.py) are specs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers

import numpy as np

from ganlib.common import IMAGE_SIZES, check_image_size, check_int

# The largest GAN (generator and discriminator parameters together) a spec describes: a
# width far above 1 makes models of gigabytes that take minutes per step on a CPU.
MAX_PARAMETERS = 50_000_000

# Settings that fix where in the data order a run stands: a resume with checkpoints must
# keep them; the others must match whenever a run folder has a run.json.
POSITION_FIELDS = ("batch_size", "steps_per_epoch", "seed")
# Not compared on resume: the total can grow, the data are compared by their pixels
# (a fingerprint in run.json), and the preset's name only says where the values came from.
UNCOMPARED_FIELDS = ("epochs", "data", "preset")
# Build options that have their own train() keyword and command-line flag.
FLAG_OPTIONS = ("spectral_norm", "minibatch_std")
LOSSES = ("bce", "hinge", "wgan-gp")
# How a training step updates the two networks (`GAN.compile`, chapter 3).
UPDATE_SCHEMES = ("ganlib", "notebook")


def positive_finite(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _check_real(value, name, low, high, *, low_open=False, high_open=True, example=""):
    """`value` as a float in [low, high) (open or closed ends as asked), else ValueError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(
            f"{name} must be a number in {left}{low:g}, {high:g}{right}{example}, got {value!r}"
        )
    return float(value)


def check_loss_options(
    loss="bce", gp_weight=10.0, r1_gamma=0.0, label_smoothing=0.0, label_noise=0.0
):
    """ValueError unless these are valid `GAN.compile` settings (chapter 5)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if not 0.0 <= label_noise <= 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5], got {label_noise!r}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if loss != "bce" and (label_smoothing or label_noise):
        raise ValueError(
            f"label_smoothing and label_noise apply to the 'bce' loss only (its labels); "
            f"leave them at 0 with loss={loss!r}, or use loss='bce'"
        )
    for value, what in ((gp_weight, "gp_weight"), (r1_gamma, "r1_gamma")):
        if (
            not isinstance(value, numbers.Real)
            or isinstance(value, bool)
            or not 0 <= value < np.inf
        ):
            raise ValueError(f"{what} must be a number >= 0 (0 turns it off), got {value!r}")


def check_update_scheme(
    update_scheme="ganlib", loss="bce", r1_gamma=0.0, augmented=False, d_steps=1
):
    """ValueError unless update_scheme is valid with these `GAN.compile` settings (chapter 3).

    "notebook" is the anime-face notebook's plain "bce" iteration: no other loss, no R1
    penalty, no augmenter (augmented: whether the GAN has one), and its own two
    discriminator updates per step (d_steps 1).
    """
    if update_scheme not in UPDATE_SCHEMES:
        raise ValueError(
            f"update_scheme must be one of {', '.join(UPDATE_SCHEMES)}, got {update_scheme!r}"
        )
    if update_scheme == "notebook" and (loss != "bce" or r1_gamma or augmented):
        raise ValueError(
            'update_scheme="notebook" is the anime-face notebook\'s plain "bce" iteration; '
            "use it without another loss, R1 or an augmenter"
        )
    if update_scheme == "notebook" and d_steps != 1:
        raise ValueError(
            f'update_scheme="notebook" makes its own two discriminator updates per step '
            f"(real batch, then generated batch); d_steps={d_steps!r} applies to "
            f'update_scheme="ganlib" only: leave d_steps at 1 or use update_scheme="ganlib"'
        )


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What a run trains: data, models, optimizers, loss and its tricks, schedule, seed (chapter 5).

    model: the model family (`ganlib.models.build_pair`: "mlp", "baseline", "improved",
    "cifar", "hybrid"); model_options: build_pair's options (e.g. {"upsample":
    "transposed"}, {"spectral_norm": True}); latent_dim None takes the family's.
    batch_size: global real images per update. d_learning_rate, g_learning_rate,
    beta_1: the two Adam optimizers. d_steps: discriminator updates per generator update.
    loss, gp_weight, r1_gamma, label_smoothing, label_noise, update_scheme: as in
    `GAN.compile`. ema: the decay of the generator's moving average (None: off). ada,
    ada_target, ada_integration_steps: adaptive augmentation (chapter 7; None: the
    AdaptiveAugmenter's defaults). epochs: the total; steps_per_epoch None: as many as
    the data fill. seed: data order, initial weights and noise. data: a SOURCE string
    for `ganlib.data.load_source` (None when `train` is given images). preset: the name
    of the preset it was made from, if any.

    Every value is checked here, so a bad one is a ValueError naming it before anything
    is built or written.
    """

    model: str = "improved"
    image_size: int = 64
    width: float = 1.0
    latent_dim: int | None = None
    model_options: dict = dataclasses.field(default_factory=dict)
    batch_size: int = 32
    d_learning_rate: float = 1e-4
    g_learning_rate: float = 2e-4
    beta_1: float = 0.5
    d_steps: int = 1
    loss: str = "bce"
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    label_smoothing: float = 0.0
    label_noise: float = 0.0
    update_scheme: str = "ganlib"
    ema: float | None = None
    ada: bool = False
    ada_target: float | None = None
    ada_integration_steps: int | None = None
    epochs: int = 10
    steps_per_epoch: int | None = None
    seed: int = 0
    data: str | None = None
    preset: str | None = None

    def __post_init__(self):
        from ganlib import models

        def put(name, value):
            object.__setattr__(self, name, value)

        if self.model not in models.MODEL_NAMES:
            raise ValueError(
                f"unknown model {self.model!r}; choose one of {', '.join(models.MODEL_NAMES)}"
            )
        if self.model == "mlp":  # any size: the dense pair flattens the image
            put("image_size", check_int(self.image_size, "image_size", 1))
        else:
            put("image_size", check_image_size(self.image_size, IMAGE_SIZES))
        if not positive_finite(self.width):
            raise ValueError(
                f"width must be a positive finite number (1.0 is the published model), "
                f"got {self.width!r}"
            )
        put("width", float(self.width))
        latent_dim = self.latent_dim
        if latent_dim is None:
            latent_dim = models.DEFAULT_LATENT_DIM[self.model]
        put("latent_dim", check_int(latent_dim, "latent_dim", 1))
        put("model_options", _checked_options(self.model, self.model_options))
        put("batch_size", check_int(self.batch_size, "batch size", 2))
        for name in ("d_learning_rate", "g_learning_rate"):
            value = getattr(self, name)
            if not positive_finite(value):
                raise ValueError(
                    f"{name} must be a positive finite number (e.g. 2e-4), got {value!r}"
                )
            put(name, float(value))
        put("beta_1", _check_real(self.beta_1, "beta_1", 0.0, 1.0, example=" (e.g. 0.5)"))
        put("d_steps", check_int(self.d_steps, "d_steps", 1))
        for name in ("gp_weight", "r1_gamma", "label_smoothing", "label_noise"):
            value = getattr(self, name)
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                put(name, float(value))
        check_loss_options(
            self.loss, self.gp_weight, self.r1_gamma, self.label_smoothing, self.label_noise
        )
        check_update_scheme(
            self.update_scheme,
            self.loss,
            self.r1_gamma,
            augmented=bool(self.ada),
            d_steps=self.d_steps,
        )
        if self.ema is not None:
            put(
                "ema",
                _check_real(
                    self.ema, "ema", 0.0, 1.0, low_open=True, example=" (a decay, e.g. 0.99)"
                ),
            )
        if not isinstance(self.ada, bool):
            raise ValueError(f"ada must be True or False, got {self.ada!r}")
        given = [n for n in ("ada_target", "ada_integration_steps") if getattr(self, n) is not None]
        if given and not self.ada:
            raise ValueError(
                f"{' and '.join(given)} only apply with ada=True (--ada); "
                f"turn adaptive augmentation on or leave them out"
            )
        if self.ada_target is not None:
            put("ada_target", _check_real(self.ada_target, "ada_target", 0.0, 1.0, low_open=True))
        if self.ada_integration_steps is not None:
            put(
                "ada_integration_steps",
                check_int(self.ada_integration_steps, "ada_integration_steps", 1),
            )
        put("epochs", check_int(self.epochs, "epochs", 1))
        if self.steps_per_epoch is not None:
            put("steps_per_epoch", check_int(self.steps_per_epoch, "steps_per_epoch", 1))
        put("seed", check_int(self.seed, "seed", 0))
        for name in ("data", "preset"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None, got {value!r}")
        _check_parameters(self)

    # ------------------------------------------------------------------ variants

    def replace(self, **changes):
        """A copy with `changes` (field names), checked like a new spec."""
        unknown = [name for name in changes if name not in FIELD_NAMES]
        if unknown:
            raise TypeError(
                f"RunSpec has no setting {unknown[0]!r}; settings: {', '.join(FIELD_NAMES)}"
            )
        return dataclasses.replace(self, **changes)

    def differences(self, other, fields=None):
        """`[(name, self's value, other's value)]` for every compared setting that differs.

        fields: the names to compare (default: all but UNCOMPARED_FIELDS).
        """
        names = fields or [n for n in FIELD_NAMES if n not in UNCOMPARED_FIELDS]
        return [
            (name, getattr(self, name), getattr(other, name))
            for name in names
            if getattr(self, name) != getattr(other, name)
        ]

    def build_options(self):
        """`build_pair`'s keyword arguments for this spec's models."""
        return dict(self.model_options)

    # ------------------------------------------------------------------ run.json

    def to_json(self):
        """The spec as a JSON-serialisable dict of its settings (run.json's "spec")."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    @classmethod
    def from_json(cls, record):
        """The spec a `to_json` dict describes; ValueError naming a setting it does not know."""
        if not isinstance(record, dict):
            raise ValueError(f"a run spec is a dict of settings, got {type(record).__name__}")
        unknown = [name for name in record if name not in FIELD_NAMES]
        if unknown:
            raise ValueError(f"unknown run setting {unknown[0]!r} in {record!r}")
        return cls(**record)


FIELD_NAMES = tuple(field.name for field in dataclasses.fields(RunSpec))


def plain_options(options):
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        raise ValueError(
            f"model_options must be a dict of build_pair options, e.g. "
            f"{{'upsample': 'transposed'}}, got {options!r}"
        )
    return options


def _checked_options(family, options):
    """model_options as a JSON-safe dict, checked against `family`'s builders."""
    from ganlib import models

    options = plain_options({} if options is None else options)
    models.split_options(family, options)  # unknown names and bad values: ValueError
    try:
        # run.json holds them: tuples come back as lists, so keep the JSON form.
        return json.loads(json.dumps(options))
    except (TypeError, ValueError):
        raise ValueError(
            f"model_options must hold plain values (str, number, bool, lists) that run.json "
            f"can record, got {options!r}"
        ) from None


def _check_parameters(spec):
    """ValueError when the spec's width makes the pair larger than MAX_PARAMETERS (widths above 1).

    The count is estimated from the pairs at width 1 and 2, which are quick to build:
    filter counts scale with the width, so a layer's parameters grow at most with its
    square, a w^2 + b w.
    """
    if spec.width <= 1.0:
        return
    from ganlib import models

    counts = []
    for scale in (1.0, 2.0):
        generator, discriminator = models.build_pair(
            spec.model,
            spec.image_size,
            latent_dim=spec.latent_dim,
            width=scale,
            **spec.build_options(),
        )
        counts.append(generator.count_params() + discriminator.count_params())
    a = max((counts[1] - 2 * counts[0]) / 2.0, 0.0)
    b = counts[0] - a
    estimate = a * spec.width**2 + b * spec.width
    if estimate <= MAX_PARAMETERS:
        return
    limit = (
        (-b + math.sqrt(b * b + 4.0 * a * MAX_PARAMETERS)) / (2.0 * a)
        if a > 0
        else MAX_PARAMETERS / b
    )
    raise ValueError(
        f"width {spec.width:g} makes a generator and discriminator of about "
        f"{estimate / 1e6:,.0f} million parameters (width 1.0, the published model, has "
        f"{counts[0] / 1e6:.1f} million): more than the {MAX_PARAMETERS / 1e6:,.0f} million "
        f"ganlib trains, which would take gigabytes and minutes per step. Choose a width "
        f"up to {math.floor(limit * 10) / 10:g}"
    )
