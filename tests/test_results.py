"""Tests for the recorded results under book/results/: provenance and size (ganlib/experiments.py)."""

import json
from pathlib import Path

import pytest

from ganlib.experiments import MAX_RESULT_BYTES, PROVENANCE_KEYS, check_provenance

RESULTS = Path(__file__).resolve().parent.parent / "book" / "results"
FOLDERS = sorted(path for path in RESULTS.iterdir() if path.is_dir()) if RESULTS.is_dir() else []


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_every_recorded_result_has_complete_provenance_and_stays_small(folder):
    assert check_provenance(folder) == []
    record = json.loads((folder / "provenance.json").read_text())
    for key in ("command", "commit", "device", "tensorflow", "date", "wall_seconds"):
        assert record[key] not in (None, ""), key
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size <= MAX_RESULT_BYTES
    if record["quick"]:  # a quick result says so where a reader looks first
        assert "Quick run" in (folder / "README.md").read_text()


def complete_record():
    """A provenance.json with every key filled, as run_experiment writes it."""
    return {
        "experiment": "seed-claim",
        "command": "python -m ganlib experiment seed-claim --out book/results/seed-claim",
        "commit": "0" * 40,
        "dirty": False,
        "device": "GPU: NVIDIA A100",
        "tensorflow": "2.21.0",
        "keras": "3.15.1",
        "python": "3.11.7",
        "date": "2026-12-02T12:00:00+00:00",
        "wall_seconds": 5220.0,
        "settings": {"epochs": 200},
        "runs": {"baseline": {"variant": "baseline", "seed": 0}},
        "runs_finished": ["baseline"],
        "processes": [{"command": "python -m ganlib experiment seed-claim", "seconds": 5220.0}],
        "quick": False,
        "full": True,
    }


def older_record():
    """A provenance.json from before runs and processes were listed: variants and sessions."""
    record = {k: v for k, v in complete_record().items() if k not in ("runs", "runs_finished")}
    record["variants_finished"] = ["baseline"]
    record["sessions"] = record.pop("processes")
    return record


def write_result(folder, record):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "provenance.json").write_text(json.dumps(record))
    (folder / "history_baseline.csv").write_text("epoch,d_loss\n0,0.7\n")
    return folder


def test_a_complete_result_passes(tmp_path):
    assert set(complete_record()) == set(PROVENANCE_KEYS)
    assert check_provenance(write_result(tmp_path / "r", complete_record())) == []


@pytest.mark.parametrize("key", PROVENANCE_KEYS)
def test_a_missing_key_is_flagged(tmp_path, key):
    record = complete_record()
    del record[key]
    problems = check_provenance(write_result(tmp_path / "r", record))
    assert problems == [f"{tmp_path / 'r' / 'provenance.json'} lacks {key!r}"]


def test_an_older_result_passes_with_its_own_keys_and_is_flagged_without_them(tmp_path):
    assert check_provenance(write_result(tmp_path / "old", older_record())) == []
    record = older_record()
    del record["sessions"]
    problems = check_provenance(write_result(tmp_path / "broken", record))
    assert problems == [f"{tmp_path / 'broken' / 'provenance.json'} lacks 'sessions'"]


@pytest.mark.parametrize("key", ["command", "commit", "device", "runs_finished"])
def test_an_empty_value_is_flagged(tmp_path, key):
    record = dict(complete_record(), **{key: [] if key == "runs_finished" else ""})
    assert any(repr(key) in problem for problem in check_provenance(write_result(tmp_path, record)))


def test_a_result_without_provenance_or_too_big_is_flagged(tmp_path):
    (tmp_path / "history_baseline.csv").write_text("epoch\n0\n")
    assert "no provenance.json" in check_provenance(tmp_path)[0]
    folder = write_result(tmp_path / "r", complete_record())
    (folder / "samples").mkdir()
    (folder / "samples" / "big.png").write_bytes(b"\0" * MAX_RESULT_BYTES)
    assert any("more than" in problem for problem in check_provenance(folder))
    (folder / "provenance.json").write_text("{not json")
    assert "not valid JSON" in check_provenance(folder)[0]
