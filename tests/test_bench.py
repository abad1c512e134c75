"""Smoke tests of the bench scripts' tiny modes: the JSON they promise, and gpu.sh's merge step.

Nothing here checks a speed: the figures of a few steps on a shared CPU mean nothing.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def _env():
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_train_throughput_tiny_writes_the_promised_json_and_row(tmp_path):
    out, results = tmp_path / "tp.json", tmp_path / "RESULTS.md"
    command = [
        sys.executable,
        str(BENCH / "train_throughput.py"),
        "--image-size", "32", "--width", "0.125", "--batch-size", "8",
        "--steps", "1", "--windows", "1", "--rounds", "1",
        "--methods", "bare,fit", "--mixed-precision", "off", "--xla", "off",
        "--json", str(out), "--results-file", str(results), "--note", "test",
    ]  # fmt: skip
    subprocess.run(command, check=True, env=_env(), cwd=tmp_path, timeout=240, capture_output=True)
    record = json.loads(out.read_text())
    for key in (
        "kind", "complete", "date", "device", "on_gpu", "tensorflow", "settings", "model",
        "image_size", "width", "batch_size", "policy", "xla", "steps_per_call", "methods",
        "rates", "ratios", "epoch_end_s", "full_run_s", "full_run_updates", "row",
    ):  # fmt: skip
        assert key in record, key
    assert record["kind"] == "train_throughput" and record["complete"] is True
    assert record["on_gpu"] is False and record["device"].startswith("CPU")
    assert (record["image_size"], record["width"], record["batch_size"]) == (32, 0.125, 8)
    assert record["policy"] == "float32" and record["xla"] is False
    assert record["methods"] == ["bare", "fit"] and set(record["rates"]) == {"bare", "fit"}
    assert all(rate > 0 for rate in record["rates"].values())
    assert record["ratios"]["fit_over_bare"] > 0 and record["ratios"]["best_fit_over_tob"] is None
    assert record["full_run_updates"] == 31_200 and record["full_run_s"] > 0
    assert record["settings"].startswith("test, 32 px, width 0.125, batch 8")
    text = results.read_text()
    assert "## Training throughput (bench/train_throughput.py)" in text
    assert record["row"] in text.splitlines()
    assert record["row"].count("|") == 15  # the table's 14 columns


def _gpu_records():
    row = (
        "| 2026-12-03 | 1 x NVIDIA H200 | 2.21.0 | 64 px, width 1, batch 32, 2x2x50 steps, "
        "mixed_float16, XLA on | 8000.0 | 7800.0 | 7900.0 (5) | 7700.0 | 0.30 | 400.0 "
        "| 0.975 | 0.988 | 0.975 | 19.75x |"
    )
    return [
        {"kind": "run", "gpu": "NVIDIA H200", "tensorflow": "2.21.0", "tiny": False},
        {"kind": "stage", "name": "tp-b32-mixed-xla", "rc": 0, "seconds": 90, "status": "ok"},
        {
            "kind": "train_throughput",
            "complete": True,
            "date": "2026-12-03",
            "device": "1 x NVIDIA H200",
            "on_gpu": True,
            "settings": "64 px, width 1, batch 32, 2x2x50 steps, mixed_float16, XLA on",
            "batch_size": 32,
            "rates": {
                "bare": 8000.0,
                "fit": 7800.0,
                "fit_k": 7900.0,
                "train": 7700.0,
                "tob": 400.0,
            },
            "ratios": {"fit_over_bare": 0.975, "fit_k_over_bare": 0.9875},
            "row": row,
        },
        {"kind": "train_throughput", "complete": False, "row": "| partial |", "on_gpu": True},
        {
            "kind": "kid_speed",
            "complete": True,
            "device": "AMD EPYC, 16 cores, numpy 2.5.2",
            "rows": [
                "| 2026-12-03 | AMD EPYC, 16 cores, numpy 2.5.2 | 2000 vs 1000 x 128 | 100 x 1000 "
                "| pooled | 0.050 | 1.500 | 30.0x (3) | 1.0e-13 |"
            ],
        },
    ]


def _merge(files_at, results, *extra):
    return subprocess.run(
        [
            "bash",
            str(BENCH / "gpu.sh"),
            "--merge",
            str(files_at),
            "--results-file",
            str(results),
            *extra,
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def results_copy(tmp_path):
    copy = tmp_path / "RESULTS.md"
    shutil.copyfile(BENCH / "RESULTS.md", copy)
    return copy


def test_merge_appends_gpu_rows_and_the_goal_table(tmp_path, results_copy):
    files_at = tmp_path / "files"
    files_at.mkdir()
    records = _gpu_records()
    (files_at / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    before = results_copy.read_text().splitlines()
    done = _merge(files_at, results_copy)
    assert done.returncode == 0, done.stderr
    after = results_copy.read_text().splitlines()
    # the throughput row lands at the end of its table, before the KID section
    row = records[2]["row"]
    assert after.index(row) < after.index("## KID speed (bench/kid_speed.py)")
    assert after[after.index(row) - 1].startswith("| 2026-12-02")
    assert "| partial |" not in after  # rows of a stage cut short stay out
    kid = [line for line in after if "2000 vs 1000 x 128 | 100 x 1000 | pooled | 0.050" in line]
    assert kid == [
        "| 2026-12-03 | AMD EPYC, 16 cores, numpy 2.5.2, the CPU of the NVIDIA H200 machine "
        "| 2000 vs 1000 x 128 | 100 x 1000 | pooled | 0.050 | 1.500 | 30.0x (3) | 1.0e-13 |"
    ]
    gpu = after[after.index("## GPU") :]
    assert not any(line.startswith("No GPU figure is recorded") for line in gpu)
    goal = [line for line in gpu if line.startswith("| 2026-12-03")]
    # best fit 7900 img/s at batch 32: 31,200 updates in 126 s; 7900 / 8000; 7900 / 400
    assert goal == [
        "| 2026-12-03 | 1 x NVIDIA H200 | 64 px, width 1, batch 32, 2x2x50 steps, mixed_float16, "
        "XLA on | 8000.0 | 7900.0 | 400.0 | 126 | 0.975 | 0.988 | 19.75x |"
    ]
    # everything that was there is still there, in order
    kept = iter(after)
    assert all(
        any(line == other for other in kept) for line in before if "No GPU figure" not in line
    )
    # a second merge adds a second goal row under the same header
    assert _merge(files_at, results_copy).returncode == 0
    assert (
        sum(
            line.startswith("| date | device | settings | bare")
            for line in results_copy.read_text().splitlines()
        )
        == 1
    )


@pytest.mark.parametrize("change", ["tiny", "no gpu", "cpu row"])
def test_merge_refuses_cpu_and_tiny_runs(tmp_path, results_copy, change):
    records = _gpu_records()
    if change == "tiny":
        records[0]["tiny"] = True
    elif change == "no gpu":
        records[0]["gpu"] = ""
    else:
        records[2]["on_gpu"] = False
    source = tmp_path / "results.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = results_copy.read_text()
    done = _merge(source, results_copy)
    assert done.returncode == 2 and "refusing" in done.stderr
    assert results_copy.read_text() == before
    assert _merge(source, results_copy, "--allow-cpu").returncode == 0
    assert results_copy.read_text() != before


def test_gpu_script_parses():
    subprocess.run(["bash", "-n", str(BENCH / "gpu.sh")], check=True, timeout=30)


def test_recipes_quick_writes_json_and_replaces_its_rows(tmp_path, results_copy):
    out = tmp_path / "recipes.json"
    command = [
        sys.executable, str(BENCH / "recipes.py"), "--quick", "--record",
        "--results-file", str(results_copy), "--json", str(out),
    ]  # fmt: skip
    before = results_copy.read_text()
    for _ in range(2):  # the second run replaces the first one's rows
        subprocess.run(
            command, check=True, env=_env(), cwd=tmp_path, timeout=400, capture_output=True
        )
    record = json.loads(out.read_text())
    assert record["kind"] == "recipes" and record["quick"] is True and record["samples"] == 64
    # the tiny recipe is scored after 1 and 2 epochs, its live and its EMA generator
    stages = [(r["epochs"], r["generator"]) for r in record["results"]]
    assert stages == [(1, "live"), (1, "EMA"), (2, "live"), (2, "EMA")]
    assert [r["steps"] for r in record["results"]] == [2, 2, 4, 4]
    for r in record["results"]:
        assert 0.0 <= r["faces"] <= 1.0 and r["coverage_ratio"] >= 0.0 and r["cpu_min"] > 0
        assert r["goals_met"] is False  # 4 steps make no faces
    assert "--ema" not in record["results"][0]["options"]
    assert "--ema 0.99" in record["results"][1]["options"]
    assert 0.0 < record["real_coverage"] <= 1.0
    lines = results_copy.read_text().splitlines()
    section = lines.index("## Quality per CPU minute (bench/recipes.py)")
    assert lines.index("## GPU") > section  # the GPU section stays last
    assert [line for line in lines if line in record["rows"]] == record["rows"]
    assert sum(line.startswith("| date | device | recipe |") for line in lines) == 1
    # everything that was there is still there, in order
    kept = iter(lines)
    assert all(any(line == other for other in kept) for line in before.splitlines())


def test_recipes_quick_refuses_to_record_into_the_real_results():
    done = subprocess.run(
        [sys.executable, str(BENCH / "recipes.py"), "--quick", "--record"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "--results-file" in done.stderr
