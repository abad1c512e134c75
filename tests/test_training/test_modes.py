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


# --------------------------------------------------------------------------- the two switches


@pytest.mark.parametrize("mode", modes.MODES)
def test_the_environment_chooses_the_mode_over_the_device(monkeypatch, mode):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    monkeypatch.setenv("GANLIB_BOOK_MODE", mode)
    assert modes.book_mode() == mode
    assert modes.book_mode("quick") == "quick"  # a MODE written by hand wins


def test_a_wrong_book_mode_variable_names_the_choices(monkeypatch):
    monkeypatch.setenv("GANLIB_BOOK_MODE", "fast")
    with pytest.raises(ValueError, match="GANLIB_BOOK_MODE must be one of quick, gpu-short, full"):
        modes.book_mode()
    monkeypatch.setenv("GANLIB_BOOK_MODE", "  ")  # blank: as if unset
    assert modes.book_mode() in ("quick", "gpu-short")


@pytest.mark.parametrize(
    ("value", "smoke"), [("1", True), ("true", True), ("0", False), ("", False), (None, False)]
)
def test_smoke_budget_cuts_only_in_a_smoke_run(monkeypatch, value, smoke):
    if value is None:
        monkeypatch.delenv("GANLIB_SMOKE", raising=False)
    else:
        monkeypatch.setenv("GANLIB_SMOKE", value)
    assert modes.is_smoke_run() is smoke
    assert modes.smoke_budget(200, 2) == (2 if smoke else 200)
    assert modes.smoke_budget((0, 1, 2), (0,)) == ((0,) if smoke else (0, 1, 2))


def test_a_wrong_smoke_variable_is_an_error(monkeypatch):
    monkeypatch.setenv("GANLIB_SMOKE", "maybe")
    with pytest.raises(ValueError, match="GANLIB_SMOKE must be 1 or 0"):
        modes.smoke_budget(10, 1)


def test_an_assumed_accelerator_sets_the_gpu_choices_on_the_cpu(monkeypatch):
    from ganlib.training import devices

    monkeypatch.setenv("GANLIB_ASSUME_ACCELERATOR", "cpu")  # whatever this machine has
    assert devices.mixed_precision_policy("auto") == "float32"
    assert devices.use_xla("auto") is False
    monkeypatch.setenv("GANLIB_ASSUME_ACCELERATOR", "gpu")
    assert devices.mixed_precision_policy("auto") == "mixed_float16"
    assert devices.use_xla("auto") is True
    monkeypatch.setenv("GANLIB_ASSUME_ACCELERATOR", "tpu")
    assert devices.mixed_precision_policy("auto") == "mixed_bfloat16"
    monkeypatch.setenv("GANLIB_ASSUME_ACCELERATOR", "quantum")
    with pytest.raises(ValueError, match="GANLIB_ASSUME_ACCELERATOR must be gpu, tpu or cpu"):
        devices.use_xla("auto")


def test_generator_updates_counts_what_training_made():
    from ._helpers import dataset, images, mlp_gan

    gan, other = mlp_gan(seed=0), mlp_gan(seed=1)
    x = images(64)
    gan.fit(dataset(x, 16), epochs=2, verbose=0)  # 4 batches of 16, twice
    other.fit(dataset(x, 32), epochs=1, verbose=0)  # 2 batches of 32
    assert modes.generator_updates(gan) == 8
    assert modes.generator_updates(gan, other) == 10
    assert "10 generator updates" in modes.check_updates(10, modes.generator_updates(gan, other))


def test_check_updates_refuses_a_plan_that_training_did_not_follow():
    with pytest.raises(ValueError, match="planned 12 generator updates but training made 10"):
        modes.check_updates(12, 10)
