"""What the benchmarks ran on, in one line for bench/RESULTS.md."""

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
