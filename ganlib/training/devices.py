"""Where training runs: the tf.distribute strategy (one machine or several), mixed precision and XLA (chapter 5)."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf


def accelerator_kind():
    """ "tpu", "gpu" or "cpu": what the default devices of this process are.

    GANLIB_ASSUME_ACCELERATOR=gpu (or tpu) makes the "auto" choices of mixed precision
    and XLA those of that device while running on the CPU: the smoke tests use it to
    run the GPU's dtype and compilation paths where no GPU is (slowly).
    """
    assumed = os.environ.get("GANLIB_ASSUME_ACCELERATOR", "").strip().lower()
    if assumed:
        if assumed not in ("gpu", "tpu", "cpu"):
            raise ValueError(
                f"GANLIB_ASSUME_ACCELERATOR must be gpu, tpu or cpu, got {assumed!r}; unset it "
                "to use the devices TensorFlow sees"
            )
        return assumed
    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    if tf.config.list_logical_devices("GPU"):
        return "gpu"
    return "cpu"


_strategy = None  # a TPU or multi-worker strategy, made once per process


def _cluster_workers():
    """How many worker tasks (the chief included) TF_CONFIG describes; 0 without TF_CONFIG."""
    try:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        cluster = resolver.cluster_spec().as_dict()
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(
            f"TF_CONFIG is not a valid cluster description ({error}); set it as chapter 5 "
            f"shows or unset it to train on this machine alone"
        ) from None
    return sum(len(cluster.get(job, ())) for job in ("chief", "worker"))


def strategy():
    """The tf.distribute strategy for this process (chapter 5).

    MultiWorkerMirroredStrategy when the TF_CONFIG environment variable describes a
    cluster of two or more workers; else TPUStrategy on a Colab/Cloud TPU,
    MirroredStrategy over all GPUs when there are two or more, otherwise the default
    (one-device) strategy. Build the GAN and its optimizers under
    `strategy().scope()`; `fit` then splits each global batch across the replicas.

    Across machines, call this (or `ganlib.train`) before anything else uses
    TensorFlow in the process: collective ops can only be set up at startup. It waits
    until every worker of the cluster has started. The TPU and multi-worker
    strategies are made once per process and returned again on later calls.
    """
    global _strategy
    # Made once: connecting to a TPU again wipes its memory, and collective ops are set
    # up once per process.
    if _strategy is not None:
        return _strategy
    if _cluster_workers() > 1:
        try:
            _strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:
            raise RuntimeError(
                f"{error}: with TF_CONFIG set, call ganlib.training.strategy() (or "
                f"ganlib.train) before any other TensorFlow work in this process, e.g. "
                f"first thing in the script or notebook"
            ) from None
        return _strategy
    if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") or glob.glob("/dev/accel*"):
        try:
            tpu = "" if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME") else "local"
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            _strategy = tf.distribute.TPUStrategy(resolver)
            return _strategy
        except (ValueError, RuntimeError, tf.errors.OpError):
            pass  # not a usable TPU after all: fall through to GPUs or the CPU
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= 2:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def is_multi_worker(distribute):
    """Whether `distribute` trains across several processes or machines (chapter 5)."""
    return isinstance(distribute, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        distribute.cluster_resolver.cluster_spec().as_dict()
    )


def is_chief(distribute=None):
    """Whether this process writes the run's files: always, except on a non-chief worker (chapter 5).

    The chief is the task of type "chief" in TF_CONFIG, or worker 0 when there is none.
    distribute: the strategy in use (default `strategy()`).
    """
    return bool((distribute or strategy()).extended.should_checkpoint)


_throwaway = None  # this process's throw-away write folder on a non-chief worker


def _remove_throwaway():
    global _throwaway
    if _throwaway is not None:
        shutil.rmtree(_throwaway, ignore_errors=True)
        _throwaway = None


atexit.register(_remove_throwaway)


def worker_run_dir(run_dir, distribute=None):
    """The folder this process writes a run's files into (chapter 5).

    `run_dir` itself on the chief. Every worker runs the same steps and callbacks, so
    another worker writes its checkpoints, samples and history into a throw-away
    folder instead: a fresh temporary one holding copies of run_dir's run.json and
    history.csv (so its settings are checked and its history matches the chief's),
    removed at the next call and when the process exits. None stays None.
    """
    if run_dir is None or is_chief(distribute):
        return run_dir
    global _throwaway
    _remove_throwaway()
    _throwaway = Path(tempfile.mkdtemp(prefix="ganlib-worker-"))
    for name in ("run.json", "history.csv"):
        if (Path(run_dir) / name).is_file():
            shutil.copy2(Path(run_dir) / name, _throwaway / name)
    return _throwaway


def _rank1_logs(train_step):
    def step(data):
        return {name: tf.reshape(value, [1]) for name, value in train_step(data).items()}

    return step


def fit_across_workers(model, distribute):
    """Let `model.fit` run under a multi-worker `distribute`; a no-op otherwise (chapter 5).

    Keras 3's fit fails there in two ways. It averages each log over the workers with
    `strategy.reduce("MEAN", value, axis=0)`, which cannot reduce the scalar logs every
    train_step returns ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388), so the logs are handed over as one-element vectors
    and come out as their mean over all workers. And with several steps per call each
    step runs inside a tf.cond, where the cross-worker step fails ("You must feed a
    value for placeholder tensor"), so each call runs one step.
    """
    if not is_multi_worker(distribute):
        return
    if "train_step" not in vars(model):  # wrap once, even if called again
        model.train_step = _rank1_logs(model.train_step)
    model.steps_per_execution = 1


def _choice(value, what):
    if value is True:
        return "on"
    if value is False or value is None:
        return "off"
    if value not in ("auto", "on", "off"):
        raise ValueError(f"{what} must be 'auto', 'on' or 'off', got {value!r}")
    return value


def mixed_precision_policy(mode="auto", accelerator=None):
    """Keras dtype policy name for `mode` ("auto", "on", "off") on `accelerator` (chapter 5).

    auto: mixed_float16 on a GPU, mixed_bfloat16 on a TPU, float32 on the CPU.
    on: mixed_bfloat16 on a TPU, mixed_float16 elsewhere. off: float32.
    """
    mode = _choice(mode, "mixed_precision")
    accelerator = accelerator or accelerator_kind()
    if mode == "off" or (mode == "auto" and accelerator == "cpu"):
        return "float32"
    return "mixed_bfloat16" if accelerator == "tpu" else "mixed_float16"


def use_xla(mode="auto", accelerator=None):
    """Whether to jit-compile the training step: auto means on GPUs and TPUs only (chapter 5)."""
    mode = _choice(mode, "xla")
    accelerator = accelerator or accelerator_kind()
    return mode == "on" or (mode == "auto" and accelerator != "cpu")


@contextlib.contextmanager
def dtype_policy(name):
    """Build models under the global dtype policy `name`, then put the old one back."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
