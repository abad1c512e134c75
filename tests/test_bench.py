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


def test_recipes_quick_writes_json_and_replaces_its_rows(tmp_path, results_copy, recipes):
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
        # fidelity and diversity apart: variety (None when no face is read), prdc
        assert r["variety"] is None or r["variety"] >= 0.0
        assert r["variety"] is not None or r["faces"] == 0.0
        for key in ("precision", "recall", "nn_coverage"):
            assert 0.0 <= r[key] <= 1.0, key
        assert r["density"] >= 0.0
        assert r["goals_met"] is False  # 4 steps make no faces
    assert "--ema" not in record["results"][0]["options"]
    assert "--ema 0.99" in record["results"][1]["options"]
    assert 0.0 < record["real_coverage"] <= 1.0
    assert record["real_variety"] == pytest.approx(1.0, abs=0.25)  # 64 real faces
    for row in record["rows"]:
        assert row.count("|") == 15  # the table's 14 columns
    lines = results_copy.read_text().splitlines()
    section = lines.index("## Quality per CPU minute (bench/recipes.py)")
    assert lines.index("## GPU") > section  # the GPU section stays last
    assert [line for line in lines if line in record["rows"]] == record["rows"]
    assert sum(line.startswith("| date | device | recipe |") for line in lines) == 1
    assert _RECIPES_HEADER in lines and recipes.SECTION_TEXT in lines
    # everything that was there is still there, in order (the section's text is today's);
    # rows recorded before variety, precision and recall with "-" in those columns
    kept = iter(lines)
    assert all(
        any(line == other for other in kept)
        for line in _widened(before).splitlines()
        if not line.startswith("Recipes for a quick toy-face run on a CPU")
    )


_OLD_RECIPES_HEADER = (
    "| date | device | recipe | options | steps | wall (s) | CPU (min) | faces | "
    "coverage / real | KID | goals |"
)
_RECIPES_HEADER = (
    "| date | device | recipe | options | steps | wall (s) | CPU (min) | read as faces | "
    "coverage / real | variety | precision | recall | KID | goals |"
)


def _widened(text):
    """`text` as it should read once the recipes table has today's columns (written out here)."""
    out, in_old_table = [], False
    for line in text.splitlines():
        if line == _OLD_RECIPES_HEADER:
            in_old_table = True
            out.append(_RECIPES_HEADER)
        elif in_old_table and line.startswith("|---"):
            out.append("|---" * 14 + "|")
        elif in_old_table and line.startswith("|"):
            cells = line.split("|")
            out.append("|".join([*cells[:10], " - ", " - ", " - ", *cells[10:]]))
        else:
            in_old_table = False
            out.append(line)
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def recipes():
    """bench/recipes.py as a module (it imports bench/machine.py as a sibling)."""
    sys.path.insert(0, str(BENCH))
    try:
        import recipes as module
    finally:
        sys.path.remove(str(BENCH))
    return module


def _result(**changes):
    result = {
        "recipe": "hybrid",
        "generator": "live",
        "epochs": 4,
        "steps": 1200,
        "options": "--data toy-faces --model hybrid --epochs 4",
        "wall_s": 300.0,
        "cpu_min": 9.5,
        "faces": 0.28,
        "coverage_ratio": 0.3,
        "variety": 0.87,
        "precision": 0.312,
        "recall": 0.755,
        "kid": 42.0,
        "goals_met": False,
    }
    return {**result, **changes}


def test_recipes_rows_and_lines_show_fidelity_and_diversity_apart(recipes):
    header = [cell.strip() for cell in recipes.TABLE_HEADER.split("|")[1:-1]]
    assert recipes.TABLE_HEADER == _RECIPES_HEADER
    assert recipes.TABLE_RULE == "|---" * len(header) + "|"
    row = recipes.row(_result(), "2026-12-06", "CPU, 2 cores")
    cells = dict(zip(header, (cell.strip() for cell in row.split("|")[1:-1]), strict=True))
    assert cells["read as faces"] == "28.0 %" and cells["coverage / real"] == "30.0 %"
    assert cells["variety"] == "0.87"
    assert (cells["precision"], cells["recall"]) == ("31.2 %", "75.5 %")
    assert cells["KID"] == "42.0" and cells["goals"] == "not met"
    line = recipes.line(_result())
    for shown in ("28.0%", "30.0%", "0.87", "31.2%", "75.5%", "42.0"):
        assert shown in line
    assert line.index("30.0%") < line.index("0.87") < line.index("31.2%") < line.index("42.0")
    for word in ("as faces", "cov/real", "variety", "prec", "recall", "KID"):
        assert word in recipes.header()
    # no face read: no variety to speak of
    row = recipes.row(_result(variety=None, faces=0.0), "2026-12-06", "CPU, 2 cores")
    assert row.split("|")[1:-1][header.index("variety")].strip() == "-"
    assert " - " in recipes.line(_result(variety=None))


def test_recording_into_a_table_from_before_variety_keeps_its_rows(tmp_path, recipes):
    old_rows = [
        "| 2026-12-02 | CPU, 2 cores | cifar, 2 ep (live) | `--model cifar --epochs 2` | 780 "
        "| 400 | 4.10 | 1.6 % | 0.6 % | 1210.9 | not met |",
        "| 2026-12-02 | CPU, 2 cores | hybrid, 4 ep (live) | `--model hybrid --epochs 4` | 1560 "
        "| 650 | 8.00 | 55.0 % | 40.1 % | 20.5 | not met |",
    ]
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            "## Quality per CPU minute (bench/recipes.py)",
            "",
            "Old text.",
            "",
            _OLD_RECIPES_HEADER,
            "|---" * 11 + "|",
            *old_rows,
            "",
            "## GPU",
            "",
            "No GPU figure is recorded yet.",
            "",
        ]
    )
    results = tmp_path / "RESULTS.md"
    results.write_text(text)
    new = recipes.row(
        _result(recipe="hybrid", epochs=4, generator="live"), "2026-12-06", "CPU, 2 cores"
    )
    for _ in range(2):  # a second record replaces the row, and widens nothing twice
        recipes.record([new], results)
        lines = results.read_text().splitlines()
        assert _RECIPES_HEADER in lines and _OLD_RECIPES_HEADER not in lines
        assert "|---" * 14 + "|" in lines
        # the cifar row stays, its figures where they were, "-" where nothing was measured
        cifar = [line for line in lines if "cifar, 2 ep" in line]
        assert cifar == [
            "| 2026-12-02 | CPU, 2 cores | cifar, 2 ep (live) | `--model cifar --epochs 2` | 780 "
            "| 400 | 4.10 | 1.6 % | 0.6 % | - | - | - | 1210.9 | not met |"
        ]
        # the hybrid row of the same label is replaced by the new one
        assert [line for line in lines if "hybrid, 4 ep (live)" in line] == [new]
        assert lines[-3:] == ["## GPU", "", "No GPU figure is recorded yet."]
        assert lines.index("## GPU") > lines.index(new)
    # a file already in today's columns is left alone by the widening
    assert recipes.widen_old_table(results.read_text()) == results.read_text()


def test_the_scorer_tells_fewer_faces_from_less_varied_faces(recipes):
    """A sample with half its images unreadable loses fidelity, not variety; a sample
    of two hair colours in eight loses variety and recall, not fidelity."""
    from ganlib.data import toy_faces

    samples = 400
    scorer = recipes.Scorer(samples)
    faces, factors = toy_faces(2000, 32, seed=5)
    same = faces[:samples]
    grey = same.copy()
    grey[::2] = 128  # flat grey: not a face
    narrow = faces[factors[:, 0] < 2][:samples]
    assert len(narrow) == samples
    like, fewer, less_varied = scorer(same, None), scorer(grey, None), scorer(narrow, None)
    assert like["faces"] > 0.95 and like["variety"] == pytest.approx(1.0, abs=0.1)
    assert like["precision"] > 0.9 and like["recall"] > 0.9
    # fewer faces: the old coverage halves, variety and recall stay
    assert fewer["faces"] == pytest.approx(0.5, abs=0.03)
    assert fewer["coverage_ratio"] < 0.65 * like["coverage_ratio"]
    assert fewer["variety"] == pytest.approx(1.0, abs=0.1)
    assert fewer["precision"] < 0.6 and fewer["recall"] > 0.9
    # less varied faces: variety and recall fall, fidelity stays
    assert less_varied["faces"] > 0.95 and less_varied["precision"] > 0.9
    assert less_varied["variety"] < 0.85 and less_varied["recall"] < 0.6
    # Its settings, pinned (RESULTS.md holds figures measured with them): the calibrated
    # decoder, KID with kid()'s default subsets, prdc with k=5.
    from ganlib import metrics

    real_features = scorer.evaluator.real_features
    fake = metrics.DomainFeatures(image_size=32)(grey)
    assert (fewer["kid"], fewer["kid_std"]) == metrics.kid(real_features, fake)
    assert fewer["recall"] == metrics.prdc(real_features, fake, k=5)["recall"]
    calibrated = metrics.mode_coverage(grey, decoder="calibrated")
    assert fewer["faces"] == 1.0 - calibrated["unrecognised"]
    assert fewer["histograms"] == {k: v.tolist() for k, v in calibrated["histograms"].items()}


def test_recipes_quick_refuses_to_record_into_the_real_results():
    done = subprocess.run(
        [sys.executable, str(BENCH / "recipes.py"), "--quick", "--record"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "--results-file" in done.stderr
