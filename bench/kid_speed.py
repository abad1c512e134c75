"""How long KID takes: ganlib.metrics.kid against the per-subset method it replaced.

    python bench/kid_speed.py [--repeats 3] [--big-repeats 3] [--big-subsets 100] [--skip-big]
                              [--no-record] [--results-file PATH] [--json PATH] [--tiny]

The reference is a private copy, below, of the per-subset loop that kid ran before it
learned to reuse the kernel of the pooled features (chapter 6): three float64 (s, d) x (d, s)
kernel products per subset. Both run in the same process on the same data and the same
seed, so they draw the same subsets; their values must agree to 1e-6 relative.

Rows (100 subsets of 1,000 each):
  - KIDMonitor's case: 2,000 real against 1,000 generated feature vectors, d = 128
    (DomainFeatures) and d = 2,048 (Inception). Goal: at least 10x faster than the reference.
  - 10,000 against 10,000, d = 2,048: kid keeps the per-subset path there. Goal: no slower
    than the reference (checked as at least 0.9x, as the machine is shared and timings wander).
Methods alternate, --repeats / --big-repeats times, and the median time counts. Prints a table and writes the rows into the KID section of
bench/RESULTS.md (--no-record: don't; --results-file: another file; --json: the rows and
figures as JSON too). Exit status 1 when a check fails. --tiny: 400 vs 200 x 32 with 10
subsets of 100, no 10,000 row, no goals checked (a seconds-long smoke test of the script).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from machine import cpu_description, write_table_section

from ganlib.metrics import distances, kid

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## KID speed (bench/kid_speed.py)"
SECTION_TEXT = (
    "Seconds for one KID (mean and std over subsets) of real against generated feature "
    "vectors. kid = ganlib.metrics.kid; reference = the per-subset method it replaced (three "
    "s x s float64 kernel products per subset, copied into bench/kid_speed.py), timed in the "
    "same run on the same subsets; median of alternating runs (runs in brackets). kid's path: "
    "pooled = the kernels of the whole sets computed once and each subset's sums read out of "
    "them (the pooled kernel must fit 256 MiB, (n + m)^2 x 8 bytes); per-subset = the "
    "reference's method. At 10,000 vs 10,000 the pooled kernel would take 3.2 GB, and reuse "
    "could not win much anyway: 100 subsets of 1,000 already evaluate 3 x 10^8 kernel "
    "entries, close to the 4 x 10^8 of the pooled kernel, so that row only checks that kid "
    "is no slower. rel. diff = largest relative difference of mean and std between the two."
)
TABLE_HEADER = (
    "| date | device | real vs fake x d | subsets x size | kid path | kid (s) "
    "| reference (s) | speed-up | rel. diff |"
)
TABLE_RULE = "|---|---|---|---|---|---|---|---|---|"


# ------------------------------------------------------------------ the reference
# The per-subset method as ganlib.metrics.kid computed it before the pooled kernel; kept
# here, unchanged, as the yardstick for both speed and values.


def _reference_cubic_kernel(a, b):
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    cube = k * k
    cube *= k
    return cube


def _reference_kid(real_features, fake_features, num_subsets=100, subset_size=1000, seed=0):
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    s = min(subset_size, len(real), len(fake))
    if s == len(real) == len(fake):
        num_subsets = 1
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for t in range(num_subsets):
        x = real[rng.choice(len(real), s, replace=False)]
        y = fake[rng.choice(len(fake), s, replace=False)]
        k_xx = _reference_cubic_kernel(x, x)
        k_yy = _reference_cubic_kernel(y, y)
        k_xy = _reference_cubic_kernel(x, y)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (s * (s - 1))
        values[t] = within - 2.0 * k_xy.mean()
    return float(values.mean()), float(values.std())


# ------------------------------------------------------------------ measuring


def features(n, m, dim, seed=0):
    """Non-negative float32 vectors like pooled ReLU features; the fake set slightly shifted."""
    rng = np.random.default_rng(seed)
    real = rng.gamma(1.0, 0.3, (n, dim)).astype(np.float32)
    fake = rng.gamma(1.1, 0.3, (m, dim)).astype(np.float32)
    return real, fake


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def measure(n, m, dim, num_subsets, subset_size, repeats):
    """Median seconds of kid and of the reference (alternating), their values, kid's path."""
    real, fake = features(n, m, dim)
    s = min(subset_size, n, m)
    pooled = distances.pooled_kernel_pays(n, m, dim, s, num_subsets)
    kid_times, reference_times = [], []
    for _ in range(repeats):
        seconds, value = timed(kid, real, fake, num_subsets, subset_size, 0)
        kid_times.append(seconds)
        seconds, reference = timed(_reference_kid, real, fake, num_subsets, subset_size, 0)
        reference_times.append(seconds)
    rel_diff = max(abs(a - b) / abs(b) for a, b in zip(value, reference, strict=True))
    return {
        "features": f"{n} vs {m} x {dim}",
        "subsets": f"{num_subsets} x {subset_size}",
        "path": "pooled" if pooled else "per-subset",
        "kid": statistics.median(kid_times),
        "reference": statistics.median(reference_times),
        "repeats": repeats,
        "value": value,
        "rel_diff": rel_diff,
    }


def device() -> str:
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    blas = f", {threads} BLAS thread{'s' if threads != '1' else ''}" if threads else ""
    return f"{cpu_description()}, numpy {np.__version__}{blas}"


def record(rows: list[str], results: Path | None = None) -> None:
    """Put `rows` at the end of the KID table in RESULTS.md, creating file or section as needed.

    Rows of an older table in this section (other columns, other methods) are dropped; the
    other scripts' sections are left as they are.
    """
    results = RESULTS if results is None else Path(results)
    write_table_section(results, SECTION, SECTION_TEXT, TABLE_HEADER, TABLE_RULE, rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per method, monitor rows")
    parser.add_argument(
        "--big-subsets", type=int, default=100, help="subsets in the 10,000 row (both methods)"
    )
    parser.add_argument(
        "--big-repeats", type=int, default=3, help="runs per method, the 10,000 row"
    )
    parser.add_argument("--skip-big", action="store_true", help="leave out the 10,000 row")
    parser.add_argument("--no-record", action="store_true", help="do not write to RESULTS.md")
    parser.add_argument(
        "--results-file", type=Path, default=RESULTS, help="the Markdown file the rows go to"
    )
    parser.add_argument("--json", type=Path, help="write the rows and figures to this JSON file")
    parser.add_argument("--tiny", action="store_true", help="small sizes, no goals (smoke test)")
    args = parser.parse_args(argv)
    dev = device()  # the load average before the run; the one after is added at the end

    cases = [
        (2000, 1000, 128, 100, args.repeats, 10.0),
        (2000, 1000, 2048, 100, args.repeats, 10.0),
    ]
    if args.tiny:
        cases = [(400, 200, 32, 10, 1, 0.0)]
    elif not args.skip_big:
        cases.append((10000, 10000, 2048, args.big_subsets, args.big_repeats, 0.9))
    header = (
        f"{'real vs fake x d':>22} {'subsets':>10} {'path':>10} {'kid (s)':>9} "
        f"{'ref (s)':>9} {'speed-up':>9} {'rel diff':>9}  check"
    )
    print(header)
    results, ok = [], True
    for n, m, dim, num_subsets, repeats, goal in cases:
        r = measure(n, m, dim, num_subsets, 100 if args.tiny else 1000, repeats)
        r["speed_up"] = r["reference"] / r["kid"]
        passed = r["speed_up"] >= goal and r["rel_diff"] <= 1e-6
        ok &= passed
        results.append(r)
        print(
            f"{r['features']:>22} {r['subsets']:>10} {r['path']:>10} {r['kid']:9.2f} "
            f"{r['reference']:9.2f} {r['speed_up']:8.1f}x {r['rel_diff']:9.1e}  "
            f"{'ok' if passed else 'FAILED'} (goal >= {goal:g}x, rel diff <= 1e-6; "
            f"KID {r['value'][0]:.6f} +- {r['value'][1]:.6f})",
            flush=True,
        )

    today = datetime.date.today().isoformat()
    if hasattr(os, "getloadavg"):
        dev += f" (at the end {os.getloadavg()[0]:.1f})"
    rows = [
        f"| {today} | {dev} | {r['features']} | {r['subsets']} | {r['path']} "
        f"| {r['kid']:.3f} | {r['reference']:.3f} | {r['speed_up']:.1f}x ({r['repeats']}) "
        f"| {r['rel_diff']:.1e} |"
        for r in results
    ]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record_ = {
            "kind": "kid_speed",
            "complete": True,
            "tiny": args.tiny,
            "date": today,
            "device": dev,
            "ok": ok,
            "results": results,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record_, indent=1) + "\n")
    if not args.no_record:
        record(rows, args.results_file)
        print(f"recorded in {args.results_file}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
