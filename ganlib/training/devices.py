"""Where training runs: the tf.distribute strategy, mixed precision and XLA (chapter 4)."""

from __future__ import annotations

import contextlib
import glob
import os

import keras
import tensorflow as tf


def _accelerator():
    """ "tpu", "gpu" or "cpu": what the default devices of this process are."""
    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    if tf.config.list_logical_devices("GPU"):
        return "gpu"
    return "cpu"


_tpu_strategy = None


def strategy():
    """The tf.distribute strategy for this machine.

    TPUStrategy on a Colab/Cloud TPU, MirroredStrategy over all GPUs when there
    are two or more, otherwise the default (one-device) strategy. Build the GAN
    and its optimizers under `strategy().scope()`; `fit` then splits each global
    batch across the replicas.
    """
    global _tpu_strategy
    if _tpu_strategy is not None:  # connecting again would wipe the TPU's memory
        return _tpu_strategy
    if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") or glob.glob("/dev/accel*"):
        try:
            tpu = "" if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") else "local"
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            _tpu_strategy = tf.distribute.TPUStrategy(resolver)
            return _tpu_strategy
        except (ValueError, RuntimeError, tf.errors.OpError):
            pass  # not a usable TPU after all: fall through to GPUs or the CPU
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= 2:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def _choice(value, what):
    if value is True:
        return "on"
    if value is False or value is None:
        return "off"
    if value not in ("auto", "on", "off"):
        raise ValueError(f"{what} must be 'auto', 'on' or 'off', got {value!r}")
    return value


def mixed_precision_policy(mode="auto", accelerator=None):
    """Keras dtype policy name for `mode` ("auto", "on", "off") on `accelerator`.

    auto: mixed_float16 on a GPU, mixed_bfloat16 on a TPU, float32 on the CPU.
    on: mixed_bfloat16 on a TPU, mixed_float16 elsewhere. off: float32.
    """
    mode = _choice(mode, "mixed_precision")
    accelerator = accelerator or _accelerator()
    if mode == "off" or (mode == "auto" and accelerator == "cpu"):
        return "float32"
    return "mixed_bfloat16" if accelerator == "tpu" else "mixed_float16"


def use_xla(mode="auto", accelerator=None):
    """Whether to jit-compile the training step: auto means on GPUs and TPUs only.

    On a 2-core CPU, XLA made the improved model's training step about 2.8 times slower.
    """
    mode = _choice(mode, "xla")
    accelerator = accelerator or _accelerator()
    return mode == "on" or (mode == "auto" and accelerator != "cpu")


@contextlib.contextmanager
def _dtype_policy(name):
    """Build models under the global dtype policy `name`, then put the old one back."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
