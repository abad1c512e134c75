"""ganlib.recorded: reading a recorded experiment folder back (chapter 3)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganlib import recorded
from ganlib.training.history import write_history

NAN = float("nan")


def _rows(kids, blanks, coverages):
    return [
        {
            "epoch": epoch,
            "d_loss": 0.5 + epoch,
            "kid": kid,
            "blank_share": blank,
            "coverage": coverage,
            "unrecognised": NAN if math.isnan(kid) else 0.25,
        }
        for epoch, (kid, blank, coverage) in enumerate(zip(kids, blanks, coverages, strict=True))
    ]


def _provenance(**changes):
    record = {
        "experiment": "seed-claim",
        "command": "python -m ganlib experiment seed-claim --out book/results/seed-claim",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": False,
        "device": "GPU: NVIDIA A100-SXM4-40GB",
        "tensorflow": "2.21.0",
        "keras": "3.15.1",
        "python": "3.11.7",
        "date": "2026-12-01T10:00:00+00:00",
        "wall_seconds": 7500.0,
        "settings": {
            "data": "toy-faces:4992",
            "image_size": 64,
            "width": 1.0,
            "batch_size": 32,
            "steps_per_epoch": 156,
            "epochs": 4,
            "measure_every": 2,
        },
        "variants_finished": ["baseline", "improved_as_run"],
        "quick": False,
        "full": True,
        "not_run": {"dropout": "not yet available: no option for it"},
    }
    record.update(changes)
    return record


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "seed-claim"
    (out / "samples").mkdir(parents=True)
    write_history(
        out / "history_baseline.csv",
        _rows([NAN, 40.0, NAN, 90.0], [NAN, 0.0, NAN, 0.75], [NAN, 0.2, NAN, 0.05]),
    )
    write_history(
        out / "history_improved_as_run.csv",
        _rows([NAN, 30.0, NAN, 10.0], [NAN, 0.0, NAN, 0.0], [NAN, 0.1, NAN, 0.3]),
    )
    for name in ("baseline_epoch_0000", "baseline_epoch_0003", "improved_as_run_epoch_0003"):
        Image.new("RGB", (4, 4)).save(out / "samples" / f"{name}.png")
    (out / "provenance.json").write_text(json.dumps(_provenance()))
    return out


def test_load_result_reads_histories_samples_and_provenance(folder):
    result = recorded.load_result(folder)
    assert result.provenance["experiment"] == "seed-claim"
    assert list(result.histories) == ["baseline", "improved_as_run"]
    baseline = result.histories["baseline"]
    np.testing.assert_array_equal(baseline["epoch"], [0, 1, 2, 3])
    assert baseline["epoch"].dtype.kind == "i"
    np.testing.assert_array_equal(baseline["kid"], [NAN, 40.0, NAN, 90.0])
    np.testing.assert_allclose(baseline["d_loss"], [0.5, 1.5, 2.5, 3.5])
    assert result.samples["baseline"] == {
        0: folder / "samples" / "baseline_epoch_0000.png",
        3: folder / "samples" / "baseline_epoch_0003.png",
    }
    # A variant name with underscores is split at its last "_epoch_".
    assert list(result.samples["improved_as_run"]) == [3]


def test_load_result_ignores_histories_of_unfinished_variants(folder):
    write_history(folder / "history_lr_ratio.csv", _rows([1.0], [0.0], [0.1]))
    assert "lr_ratio" not in recorded.load_result(folder).histories


def test_missing_folder_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ganlib experiment ablation --out"):
        recorded.load_result(tmp_path / "ablation")


def test_missing_provenance_names_the_command(folder):
    (folder / "provenance.json").unlink()
    with pytest.raises(
        FileNotFoundError, match="no provenance.json.*python -m ganlib experiment seed-claim"
    ):
        recorded.load_result(folder)


def test_missing_history_of_a_finished_variant(folder):
    (folder / "history_baseline.csv").unlink()
    with pytest.raises(FileNotFoundError, match="history_baseline.csv"):
        recorded.load_result(folder)


def test_broken_provenance_is_a_value_error(folder):
    (folder / "provenance.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        recorded.load_result(folder)


def test_caption_states_provenance_and_schedule(folder):
    caption = recorded.provenance_caption(recorded.load_result(folder).provenance)
    for part in (
        "python -m ganlib experiment seed-claim --out book/results/seed-claim",
        "commit 0123456789ab",
        "NVIDIA A100",
        "TensorFlow 2.21.0",
        "2026-12-01T10:00:00",
        "2 h 05 min",  # 7500 s
        "full registered schedule",
        "64 px, width 1.0, 4 epochs of 156 updates",
        "dropout (not yet available",
    ):
        assert part in caption, part
    assert "uncommitted" not in caption


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"quick": True, "full": False}, "quick check"),
        ({"full": False}, "reduced schedule"),
        ({"dirty": True}, "with uncommitted changes"),
        ({"wall_seconds": 95}, "wall time 95 s"),
        ({"wall_seconds": 1800}, "wall time 30 min"),
        (
            {"settings": {"measure_every": 1, "kid": False}},
            "measured every epoch (blank share only",
        ),
    ],
)
def test_caption_variants(changes, expected):
    assert expected in recorded.provenance_caption(_provenance(**changes))


def test_caption_rejects_non_dict():
    with pytest.raises(ValueError, match="dict of a provenance.json"):
        recorded.provenance_caption("provenance.json")


def test_summarise_finds_peak_fall_and_blank_epoch(folder):
    summary = recorded.summarise(recorded.load_result(folder).histories["baseline"])
    assert summary["last_epoch"] == 3
    assert summary["kid"] == 90.0
    assert summary["coverage"] == 0.05
    assert summary["peak_coverage"] == 0.2 and summary["peak_epoch"] == 1
    assert summary["blank_share"] == 0.75 and summary["max_blank_share"] == 0.75
    assert summary["first_blank_epoch"] == 3
    improved = recorded.summarise(recorded.load_result(folder).histories["improved_as_run"])
    assert improved["first_blank_epoch"] == -1
    assert improved["peak_epoch"] == 3


def test_summarise_takes_a_train_history_of_lists():
    history = {"epoch": [0, 1], "kid": [5.0, 3.0], "blank_share": [0.0, 0.5]}
    summary = recorded.summarise(history)
    assert summary["kid"] == 3.0 and summary["first_blank_epoch"] == 1
    assert math.isnan(summary["coverage"]) and summary["peak_epoch"] == -1


def test_summarise_rejects_unmeasured_histories():
    with pytest.raises(ValueError, match="no measured epoch"):
        recorded.summarise({"epoch": [0, 1], "blank_share": [NAN, NAN]})
    with pytest.raises(ValueError, match="'epoch' column"):
        recorded.summarise({"kid": [1.0]})


def test_reading_imports_no_tensorflow():
    code = (
        "import sys, ganlib.recorded; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- several seeds


@pytest.fixture
def seeded(tmp_path):
    """Two variants, three seeds each, KID measured at four checkpoints."""
    out = tmp_path / "seed-claim"
    out.mkdir()
    kids = {
        ("a", 0): [NAN, 50.0, NAN, 40.0, NAN, 30.0, NAN, 20.0],
        ("a", 1): [NAN, 60.0, NAN, 10.0, NAN, 10.0, NAN, 10.0],
        ("a", 2): [NAN, 10.0, NAN, NAN, NAN, NAN, NAN, NAN],
        ("b", 0): [NAN, 10.0, NAN, 90.0, NAN, 90.0, NAN, 90.0],
        ("b", 1): [NAN, 10.0, NAN, 10.0, NAN, 10.0, NAN, 10.0],
        ("b", 2): [NAN, 99.0, NAN, 1.0, NAN, 2.0, NAN, 3.0],
    }
    runs = {}
    for (variant, seed), kid in kids.items():
        run = f"{variant}_seed{seed}"
        runs[run] = {"variant": variant, "seed": seed}
        write_history(out / f"history_{run}.csv", _rows(kid, [0.0] * 8, [0.1] * 8))
    record = _provenance(
        runs=runs,
        runs_finished=list(runs),
        run_shared={"a_seed0": False, "b_seed2": True},
        processes=[{"command": "first"}, {"command": "second"}],
        grid_epochs=[0, 7],
    )
    del record["variants_finished"]
    (out / "provenance.json").write_text(json.dumps(record))
    return recorded.load_result(out)


def test_window_mean_reads_the_last_measured_checkpoints(seeded):
    history = seeded.histories["a_seed0"]
    assert recorded.window_mean(history, "kid", last=3) == pytest.approx(30.0)
    assert recorded.window_mean(history, "kid", last=1) == 20.0
    assert recorded.window_mean(history, "kid", last=10) == pytest.approx(35.0)
    assert recorded.window_mean(seeded.histories["a_seed2"], "kid") == 10.0  # one measured
    assert math.isnan(recorded.window_mean(history, "not_a_column"))
    with pytest.raises(ValueError, match="last must be"):
        recorded.window_mean(history, "kid", last=0)


def test_over_seeds_gives_each_seed_then_mean_and_range(seeded):
    assert seeded.runs["b_seed1"] == {"variant": "b", "seed": 1}
    table = recorded.over_seeds(seeded, "kid", last=3)
    assert table["a"]["seeds"] == pytest.approx({0: 30.0, 1: 10.0, 2: 10.0})
    assert table["a"]["mean"] == pytest.approx(50.0 / 3)
    assert (table["a"]["min"], table["a"]["max"], table["a"]["n"]) == (10.0, 30.0, 3)
    assert table["b"]["seeds"] == pytest.approx({0: 90.0, 1: 10.0, 2: 2.0})


def test_seeds_better_counts_wins_seed_by_seed_and_ties_are_not_wins(seeded):
    table = recorded.over_seeds(seeded, "kid", last=3)
    assert recorded.seeds_better(table["a"], table["b"], higher_is_better=False) == (1, 3)
    assert recorded.seeds_better(table["b"], table["a"], higher_is_better=False) == (1, 3)
    assert recorded.seeds_better(table["a"], table["b"], higher_is_better=True) == (1, 3)
    table["b"]["seeds"][0] = NAN
    assert recorded.seeds_better(table["a"], table["b"], higher_is_better=False)[1] == 2


def test_the_caption_counts_runs_seeds_processes_and_shared_timings(seeded):
    caption = recorded.provenance_caption(seeded.provenance)
    assert "6 runs (a, b; seeds 0, 1, 2)" in caption
    assert "2 processes" in caption
    assert "shared the machine while 1 of the runs trained (b_seed2)" in caption
    assert "epochs 1, 8 (from 1)" in caption
