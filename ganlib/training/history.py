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
    """history.csv as a list of dicts: `epoch` int, the rest float, nan when empty (chapter 5).

    A file that is not such a table (no `epoch` column, a value that is not a number,
    a cut line) is a ValueError naming the file and the line.
    """
    rows = []
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        try:
            if "epoch" not in (reader.fieldnames or ()):
                raise ValueError(f"no 'epoch' column (the header is {reader.fieldnames!r})")
            for row in reader:
                if None in row or None in row.values():
                    raise ValueError(
                        f"line {reader.line_num} has {'more' if None in row else 'fewer'} "
                        f"values than the header has columns"
                    )
                rows.append(
                    {
                        k: int(v) if k == "epoch" else (float(v) if v != "" else float("nan"))
                        for k, v in row.items()
                    }
                )
        except (ValueError, csv.Error) as error:
            where = f"line {reader.line_num}: " if reader.line_num else ""
            detail = str(error) if str(error).startswith("line ") else f"{where}{error}"
            raise ValueError(
                f"{path} is not a history ganlib can read ({detail}); restore it from a copy, or "
                f"move it aside: training then writes a new one with the epochs it trains from now on"
            ) from None
    return rows
