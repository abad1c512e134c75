"""How long KID takes: ganlib.metrics.kid against a plain Python loop over kernel terms.

    python bench/kid_speed.py [--n 10000] [--dim 2048] [--subsets 100] [--subset-size 1000]

Both compute the same unbiased MMD^2 over the same random subsets. The naive
version loops over every pair (i, j) of a subset in Python with one np.dot per
kernel term; it takes minutes per 100 subsets, so it is timed on
--naive-subsets subsets (1 by default) and scaled up linearly, which is exact
for a loop whose subsets all cost the same. Prints both times and their ratio
and appends a row to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
from machine import cpu_description

from ganlib.metrics import kid

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## KID speed (bench/kid_speed.py)"


def naive_mmd(x, y):
    """Unbiased MMD^2 of one subset, one kernel term at a time."""
    m, d = x.shape
    xx = yy = xy = 0.0
    for i in range(m):
        for j in range(m):
            if i != j:
                xx += (np.dot(x[i], x[j]) / d + 1.0) ** 3
                yy += (np.dot(y[i], y[j]) / d + 1.0) ** 3
            xy += (np.dot(x[i], y[j]) / d + 1.0) ** 3
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (m * m)


def naive_kid(real, fake, num_subsets, subset_size, seed=0):
    rng = np.random.default_rng(seed)
    s = min(subset_size, len(real), len(fake))
    values = []
    for _ in range(num_subsets):
        x = real[rng.choice(len(real), s, replace=False)]
        y = fake[rng.choice(len(fake), s, replace=False)]
        values.append(naive_mmd(x, y))
    return float(np.mean(values))


def device() -> str:
    return f"{cpu_description()}, numpy {np.__version__}"


def append_row(row: str) -> None:
    header = (
        f"\n{SECTION}\n\n"
        "KID of n real against n fake feature vectors; naive = Python loop over every kernel "
        "term (np.dot per pair) timed on a few subsets and scaled to all of them.\n\n"
        "| date | device | features | subsets x size | vectorised (s) | naive (s) | naive method | speed-up |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    existed = RESULTS.exists() and RESULTS.stat().st_size > 0
    text = RESULTS.read_text() if existed else ""
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    with RESULTS.open("a") as f:
        if not existed:
            f.write("# Benchmark results\n\nRows are appended by the scripts in bench/.\n")
        if not sections or sections[-1] != SECTION:
            f.write(header)
        f.write(row + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--subsets", type=int, default=100)
    parser.add_argument("--subset-size", type=int, default=1000)
    parser.add_argument("--naive-subsets", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    # Non-negative, like pooled ReLU features; the fake set is slightly shifted.
    real = rng.gamma(1.0, 0.3, (args.n, args.dim)).astype(np.float32)
    fake = rng.gamma(1.1, 0.3, (args.n, args.dim)).astype(np.float32)

    start = time.perf_counter()
    mean, std = kid(real, fake, args.subsets, args.subset_size, seed=0)
    vectorised = time.perf_counter() - start
    print(f"vectorised kid: {vectorised:.2f} s  (KID {mean:.5f} +- {std:.5f})")

    real64, fake64 = real.astype(np.float64), fake.astype(np.float64)
    start = time.perf_counter()
    naive_value = naive_kid(real64, fake64, args.naive_subsets, args.subset_size, seed=0)
    measured = time.perf_counter() - start
    naive = measured * args.subsets / args.naive_subsets
    check, _ = kid(real, fake, args.naive_subsets, args.subset_size, seed=0)
    print(
        f"naive loop: {measured:.1f} s for {args.naive_subsets} subset(s) -> {naive:.0f} s for "
        f"{args.subsets} (same subsets agree: {naive_value:.6f} vs {check:.6f})"
    )
    ratio = naive / vectorised
    print(f"speed-up: {ratio:.0f}x ({'at least' if ratio >= 10 else 'BELOW'} the required 10x)")

    if not args.no_record:
        row = (
            f"| {datetime.date.today().isoformat()} | {device()} | {args.n} vs {args.n} x {args.dim} "
            f"| {args.subsets} x {args.subset_size} | {vectorised:.1f} | {naive:.0f} "
            f"| per-pair loop on {args.naive_subsets} subset(s), x{args.subsets / args.naive_subsets:g} "
            f"| {ratio:.0f}x |"
        )
        append_row(row)
        print(f"appended to {RESULTS}")
    return 0 if ratio >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
