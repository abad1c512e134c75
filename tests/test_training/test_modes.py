import pytest

from ganlib.training import modes


def test_auto_mode_follows_the_device(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert modes.book_mode() == "quick"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert modes.book_mode("auto") == "gpu-short"


@pytest.mark.parametrize("mode", modes.MODES)
def test_named_modes_are_kept(mode):
    assert modes.book_mode(mode) == mode


@pytest.mark.parametrize("mode", ["Quick", "gpu", "", None])
def test_unknown_mode_names_the_choices(mode):
    with pytest.raises(ValueError, match="'quick', 'gpu-short', 'full'"):
        modes.book_mode(mode)


def test_gpu_minutes_scale_the_measured_a100_epoch():
    # 200 epochs of 156 updates at 26 s per epoch: 86.7 minutes on the A100.
    estimate = modes.gpu_minutes(200 * 156)
    assert estimate["A100"] == pytest.approx(200 * 26 / 60)
    assert estimate["T4"] == pytest.approx(estimate["A100"] * 19.5 / 8.1)
    assert modes.gpu_minutes(100, cost=2)["A100"] == pytest.approx(
        2 * modes.gpu_minutes(100)["A100"]
    )
    with pytest.raises(ValueError):
        modes.gpu_minutes(-1)


def test_mode_table_lists_the_gpu_modes_with_their_estimates():
    table = modes.mode_table({"quick": 10, "gpu-short": 31 * 156, "full": 200 * 156})
    rows = table.splitlines()
    assert len(rows) == 4  # header, rule, gpu-short, full: quick runs on a CPU
    assert rows[2].startswith("| `gpu-short` | 4,836 |")
    assert f"about {200 * 26 / 60:.0f} min" in rows[3]  # 87 minutes, the measured A100 run
    assert "estimate" in rows[0]
    with pytest.raises(ValueError, match="unknown modes"):
        modes.mode_table({"fast": 1})
