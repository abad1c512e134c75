"""Training: the GAN model, its presets, callbacks, checkpoints and runs.

- `GAN` (gan.py): a keras.Model whose `train_step` updates both networks, so `fit()`,
  callbacks and tf.distribute work.
- `RunSpec` (spec.py): everything that decides what a run trains, checked once;
  `PRESETS` (presets.py) are the book's named specs.
- `train` and `load_run` (runs.py): a run folder with sample grids, checkpoints that
  survive a killed process, history.csv, and resuming.
- callbacks.py, checkpoints.py, history.py: the pieces `train` puts together.
- `export_generator` (export.py): a run's generator as a stand-alone .keras file.
- devices.py: tf.distribute strategy, mixed precision and XLA.
- notebook_loop.py: the anime-face notebook's train_on_batch loop, for comparison.
- modes.py: a chapter's MODE (quick, gpu-short, full) and what a GPU run costs.

Names load from their file on first use, so reading a history.csv
(`ganlib.training.history`) does not import TensorFlow.
"""

from ganlib.common import lazy_exports

_EXPORTS = {
    "GAN": "gan",
    "discriminator_logits": "gan",
    "PRESETS": "presets",
    "PRESET_SOURCES": "presets",
    "preset_spec": "presets",
    "run_info_spec": "presets",
    "RunSpec": "spec",
    "run_spec": "runs",
    "train": "runs",
    "load_run": "runs",
    "read_run_info": "runs",
    "lock_run": "runs",
    "RunInUseError": "runs",
    "export_generator": "export",
    "steps_per_call": "gan",
    "StopOnNonFinite": "callbacks",
    "HistoryCSV": "callbacks",
    "SampleGrid": "callbacks",
    "Checkpoints": "checkpoints",
    "save_checkpoint": "checkpoints",
    "load_checkpoint": "checkpoints",
    "latest_checkpoint": "checkpoints",
    "list_checkpoints": "checkpoints",
    "read_history": "history",
    "write_history": "history",
    "METRIC_NAMES": "history",
    "strategy": "devices",
    "mixed_precision_policy": "devices",
    "use_xla": "devices",
    "train_on_batch_loop": "notebook_loop",
    "MODES": "modes",
    "book_mode": "modes",
    "is_smoke_run": "modes",
    "smoke_budget": "modes",
    "gpu_minutes": "modes",
    "mode_table": "modes",
    "generator_updates": "modes",
    "check_updates": "modes",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
