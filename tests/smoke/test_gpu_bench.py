"""bench/gpu.sh, the script a reader runs on their own GPU, run as written with --tiny on the CPU.

No GPU runs ganlib here, so the script's first real run is a reader's. --tiny keeps every
stage's code path (the throughput script with mixed precision and XLA, and without; KID;
the seed-claim experiment; packing and the merge into RESULTS-gpu.md) at 32 px, width
0.125, a couple of updates, in about two minutes. Part of `.ci/run`'s smoke step.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GPU_SH = ROOT / "bench" / "gpu.sh"
RAN = {"tp-b32-mixed-xla", "tp-b32-f32-noxla", "kid", "experiment"}


def _tree_results():
    """A fingerprint of the tree's recorded seed-claim, which --tiny must never touch."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "book" / "results" / "seed-claim").rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_gpu_sh_runs_as_written_with_tiny_settings_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    before = _tree_results()
    env = {**os.environ, "OUT": str(out), "GPU_BUDGET_SECONDS": "420", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("GANLIB_SMOKE", None)
    result = subprocess.run(
        ["bash", str(GPU_SH), "--tiny"], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]

    run = next(r for r in records if r["kind"] == "run")
    assert run["tiny"] is True and run["gpu"] == "", run  # never passed off as a GPU figure
    stages = {r["name"]: r["status"] for r in records if r["kind"] == "stage"}
    assert {name: stages.get(name) for name in RAN} == dict.fromkeys(RAN, "ok"), (
        stages,
        (out / "gpu.log").read_text()[-4000:],
    )
    assert all(status == "skipped" for name, status in stages.items() if name not in RAN), stages
    throughput = [r for r in records if r["kind"] == "train_throughput"]
    # both settings a GPU run leads with: mixed precision with XLA, float32 without
    assert sorted(r["policy"] for r in throughput) == ["float32", "mixed_float16"], throughput
    assert all(r["complete"] and r["rates"] and min(r["rates"].values()) > 0 for r in throughput)
    assert any(r["kind"] == "kid_speed" and r["complete"] for r in records)

    # The report: the rows a --merge would append, marked as a CPU run.
    report = (out / "RESULTS-gpu.md").read_text()
    assert "gpu.sh --tiny on the CPU" in report
    # The experiment's folders come back packed; the tree's results are untouched.
    with tarfile.open(out / "seed-claim-out.tar.gz") as packed:
        names = packed.getnames()
    assert "book/results/seed-claim/provenance.json" in names, names
    assert sorted(out.glob("seed-claim-work.tar.part*")), sorted(p.name for p in out.iterdir())
    assert _tree_results() == before

    # A tiny run's results are refused by --merge into the real table.
    refused = subprocess.run(
        ["bash", str(GPU_SH), "--merge", str(out), "--results-file", str(tmp_path / "RESULTS.md")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "a --tiny run" in refused.stderr, refused.stderr
    assert not (tmp_path / "RESULTS.md").exists()
