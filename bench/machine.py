"""What the benchmarks ran on, in one line, and how they put their tables into bench/RESULTS.md."""

import os
import platform
from pathlib import Path


def cpu_description() -> str:
    """CPU model, usable cores and the current load average, e.g. 'AMD EPYC, 2 cores, load average 1.2'."""
    model = platform.processor() or platform.machine() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{model}, {cores} cores{load}"


def write_table_section(results, section, text, header, rule, rows, key=None, before=None):
    """Put `rows` at the end of `section`'s table in the Markdown file `results`.

    The file and the section are created as needed; rows of the section's table are kept
    unless `key(row)` matches a new row's key (or the table has another header); other
    sections stay as they are. A new section goes before the line `before` when given.
    """
    results = Path(results)
    existing = results.read_text() if results.exists() else ""
    if not existing.strip():
        existing = "# Benchmark results\n\nRows are appended by the scripts in bench/.\n"
    lines = existing.rstrip("\n").split("\n")
    old_rows, tail = [], []
    if section in lines:
        start = lines.index(section)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
        end = len(lines) if end is None else end
        if header in lines[start:end]:
            first = lines.index(header, start) + 2
            old_rows = [line for line in lines[first:end] if line.startswith("|")]
        tail, lines = lines[end:], lines[:start]
    elif before is not None and before in lines:
        start = lines.index(before)
        tail, lines = lines[start:], lines[:start]
    if key is not None:
        new_keys = {key(row) for row in rows}
        old_rows = [row for row in old_rows if key(row) not in new_keys]
    while lines and not lines[-1].strip():
        lines.pop()
    lines += ["", section, "", text, "", header, rule, *old_rows, *rows]
    lines += [""] + tail if tail else []
    results.write_text("\n".join(lines) + "\n")
