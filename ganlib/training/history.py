"""history.csv: one row per finished epoch (chapter 5).

Plain Python: reading it needs no TensorFlow.
"""

from __future__ import annotations

import csv
import io

from ganlib.common import atomic_write

# The GAN's own logged values, in the order history.csv shows them.
METRIC_NAMES = ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "aug_p")


def write_history(path, rows):
    """Write rows (dicts with an `epoch` key) as CSV, atomically, columns in order (chapter 5)."""
    keys = {key for row in rows for key in row}
    columns = ["epoch"] + [k for k in METRIC_NAMES if k in keys]
    columns += sorted(keys - set(columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(path, "w") as file:
        file.write(buffer.getvalue())


def read_history(path):
    """history.csv as a list of dicts: `epoch` int, the rest float, nan when empty (chapter 5)."""
    rows = []
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            rows.append(
                {
                    k: int(v) if k == "epoch" else (float(v) if v != "" else float("nan"))
                    for k, v in row.items()
                }
            )
    return rows
