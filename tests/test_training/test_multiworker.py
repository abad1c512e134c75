"""Training across machines: two workers on this machine under MultiWorkerMirroredStrategy."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ._helpers import SUBPROCESS_ENV

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds for both workers together: a stuck collective must not hang CI

WORKER = """
import json, sys
import numpy as np
import ganlib
from ganlib.training import devices

run_dir, epochs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
gan, history = ganlib.train(
    "toy-faces:128", model="improved", image_size=32, width=0.125, epochs=epochs,
    batch_size=32, steps_per_epoch=4, run_dir=run_dir, seed=0, verbose=0,
)
np.savez(out + ".npz", *[np.asarray(w) for w in gan.generator.trainable_weights])
with open(out + ".json", "w") as file:
    json.dump({
        "history": history,
        "step": int(gan.global_step.numpy()),
        "replicas": gan.run_details["replicas"],
        "chief": devices.is_chief(),
        "throwaway": devices._throwaway and str(devices._throwaway),
        "throwaway_files": devices._throwaway and sorted(
            str(p.relative_to(devices._throwaway)) for p in devices._throwaway.rglob("*") if p.is_file()
        ),
    }, file)
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _train_two_workers(run, tmp, epochs):
    """Run WORKER as worker 0 and 1 of one cluster; [(result dict, generator weights)] per worker."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes, outs, logs = [], [], []
    for index in range(2):
        out = tmp / f"worker{index}-epochs{epochs}"
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        logs.append(open(f"{out}.log", "w"))
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(run), str(epochs), str(out)],
                cwd=ROOT,
                env={**SUBPROCESS_ENV, "TF_CONFIG": json.dumps(tf_config)},
                stdout=subprocess.DEVNULL,
                stderr=logs[-1],
            )
        )
        outs.append(out)
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p in processes):
            # One worker failing leaves the other waiting for it: stop both at once.
            if time.monotonic() > deadline or any(p.poll() for p in processes):
                break
            time.sleep(0.5)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()  # SIGKILL: a worker blocked in a collective ignores SIGTERM
            p.wait()
        for log in logs:
            log.close()
    failed = [i for i, p in enumerate(processes) if p.returncode != 0]
    if failed:
        logs = "\n".join(
            f"--- worker {i}:\n{Path(f'{outs[i]}.log').read_text()[-2500:]}" for i in failed
        )
        pytest.fail(f"worker(s) {failed} failed or ran past {TIMEOUT} s:\n{logs}")
    results = []
    for out in outs:
        with np.load(f"{out}.npz") as weights:
            results.append((json.loads(Path(f"{out}.json").read_text()), list(weights.values())))
    return results


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def first_epoch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiworker")
    run = tmp / "run"
    start = time.monotonic()
    results = _train_two_workers(run, tmp, epochs=1)
    print(f"two workers, one epoch: {time.monotonic() - start:.0f} s")
    return run, tmp, results


def test_two_workers_train_one_model_and_only_the_chief_writes(first_epoch):
    run, _, [(chief, chief_weights), (other, other_weights)] = first_epoch
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["chief"] and not other["chief"]
    assert chief["step"] == other["step"] == 4
    # Gradients are summed over both workers, so both apply the same updates. (BatchNorm's
    # moving statistics are not trained: each worker's come from its half of each batch.)
    assert len(chief_weights) == len(other_weights) > 0
    for a, b in zip(chief_weights, other_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # The logs are averaged over the workers: both report the same history.
    assert chief["history"] == other["history"]
    assert chief["history"]["epoch"] == [0]
    assert _files(run) == [
        "checkpoints/ckpt-000000004.npz",
        "history.csv",
        "run.json",
        "samples/epoch_0000.png",
    ]
    # Worker 1 wrote the same kinds of files, into a throw-away folder gone with it.
    assert chief["throwaway"] is None
    assert "history.csv" in other["throwaway_files"]
    assert "checkpoints/ckpt-000000004.npz" in other["throwaway_files"]
    assert not Path(other["throwaway"]).exists()


def test_both_workers_resume_from_the_chiefs_checkpoint(first_epoch):
    run, tmp, _ = first_epoch
    start = time.monotonic()
    [(chief, chief_weights), (other, other_weights)] = _train_two_workers(run, tmp, epochs=2)
    print(f"two workers, resumed for one more epoch: {time.monotonic() - start:.0f} s")
    # Worker 1 never wrote a checkpoint: had it not loaded the chief's, its weights
    # (and step count) would now differ from the chief's.
    assert chief["step"] == other["step"] == 8
    for a, b in zip(chief_weights, other_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert chief["history"] == other["history"]
    assert chief["history"]["epoch"] == [0, 1]
    from ganlib.training import read_history

    assert [row["epoch"] for row in read_history(run / "history.csv")] == [0, 1]
    assert _files(run) == [
        "checkpoints/ckpt-000000004.npz",
        "checkpoints/ckpt-000000008.npz",
        "history.csv",
        "run.json",
        "samples/epoch_0000.png",
        "samples/epoch_0001.png",
    ]
    assert not Path(other["throwaway"]).exists()


def test_tf_config_decides_whether_training_spans_machines(monkeypatch):
    from ganlib.training import devices

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert devices._cluster_workers() == 0
    one = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(one))
    assert devices._cluster_workers() == 1  # one worker: train on this machine as usual
    two = {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    assert devices._cluster_workers() == 2
    monkeypatch.setenv("TF_CONFIG", "{'cluster': oops")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        devices._cluster_workers()


def test_a_non_chief_worker_writes_into_a_throwaway_copy(tmp_path):
    from types import SimpleNamespace

    from ganlib.training import devices

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text('{"model": "improved"}\n')
    (run / "history.csv").write_text("epoch,d_loss\n0,0.5\n")
    (run / "checkpoints" / "ckpt-000000004.npz").write_bytes(b"")

    def worker(chief):
        return SimpleNamespace(extended=SimpleNamespace(should_checkpoint=chief))

    assert devices.worker_run_dir(run, worker(True)) == run
    assert devices.worker_run_dir(None, worker(False)) is None
    first = devices.worker_run_dir(run, worker(False))
    assert first != run and first.is_dir()
    # Copies of what the run's settings check and history need; no checkpoints to resume from.
    assert _files(first) == ["history.csv", "run.json"]
    assert (first / "history.csv").read_text() == (run / "history.csv").read_text()
    second = devices.worker_run_dir(run, worker(False))
    assert not first.exists() and second.is_dir()  # one throw-away folder per process
    devices._remove_throwaway()
    assert not second.exists()
    assert _files(run) == ["checkpoints/ckpt-000000004.npz", "history.csv", "run.json"]
