#!/usr/bin/env python3
"""Execute a notebook many times with nbclient and report any run that stalls.

Why: one `jupyter-book build .` stopped while executing chapter 1, kernel and client both
idle, and the 600-second cell timeout never fired. This script executes a notebook the
way jupyter-book does (jupyter-cache -> nbclient, timeout=600), each time in a fresh
kernel and a fresh client process, and watches for a run in which no cell completes for
--stall-seconds. A stalled run is reported with what was running (state, CPU time), what
the kernel last received (asked through a second client), and the client's and kernel's
Python stacks (faulthandler); then it is killed, kernel included, so this script never
hangs itself (--max-minutes bounds it in all).

    python .ci/hang_repro.py --runs 16 --stall-seconds 30   # synthetic notebook, ~1 min
    python .ci/hang_repro.py --runs 3 --notebook book/01_gan_basics.ipynb --stall-seconds 300

What it found: the stall comes in cells that display an ipywidgets `interactive` (an
Output widget capturing a matplotlib figure), under ipykernel 6.31 and 7.4 alike. The
kernel has run the cell and is idle; the client waits on the shell channel for the
execute_reply. nbclient's mimic of the Output widget sends every captured output back to
the kernel on that same shell channel while it waits, and the reply is then not seen
until the poll times out: the cell "completes" after exactly the cell timeout (600 s),
with no error, which is why the timeout never seemed to fire (jupyter/nbclient#312). The
synthetic notebook is just such cells; --no-widget-sync (the mimic keeps the outputs but
does not send them back) makes the stalls go away.

Use the Python of the environment under test; the kernel runs with the same interpreter.
Each run's result is one JSON line in --out (if given); the summary names the versions.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib.util
import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONED = [
    "ipykernel",
    "jupyter_client",
    "nbclient",
    "pyzmq",
    "tornado",
    "ipython",
    "ipywidgets",
    "tensorflow",
]


def _watchdog():
    """The process-tree helpers of .ci/watchdog.py (loaded by path: `watchdog` is also
    the name of a PyPI package)."""
    spec = importlib.util.spec_from_file_location("ci_watchdog", HERE / "watchdog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------
# The synthetic notebook
# --------------------------------------------------------------------------------------

SYNTHETIC_CELLS = [
    # What chapter 1's snapshot browser does: a 7x7-inch figure (filled contours, 2,000
    # points, a colour bar) drawn by an ipywidgets `interactive`, i.e. inside an Output
    # widget; twelve such cells, each a chance to stall.
    """\
%matplotlib inline
import ipykernel
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

g = np.linspace(-3, 3, 120)
gx, gy = np.meshgrid(g, g)


def show(k=3):
    fig, ax = plt.subplots(figsize=(7, 7), layout="constrained")
    image = ax.contourf(gx, gy, np.sin(gx * (k + 1)) * np.cos(gy),
                        levels=np.linspace(-1, 1, 11), cmap="coolwarm", alpha=0.6)
    points = np.random.default_rng(k).normal(size=(2000, 2))
    ax.scatter(points[:, 0], points[:, 1], s=2, c="red", alpha=0.5, label="generated")
    fig.colorbar(image, ax=ax, shrink=0.8, label="D(x)")
    ax.legend(loc="upper left", markerscale=4)
    plt.show()


print("ipykernel", ipykernel.__version__)""",
] + [
    f"""\
browser_{i} = widgets.interactive(
    show, k=widgets.IntSlider(value={i % 5}, min=0, max=5, continuous_update=False))
display(browser_{i})"""
    for i in range(12)
]


def synthetic_notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in SYNTHETIC_CELLS]
    return nb


# --------------------------------------------------------------------------------------
# Child: one execution, in a process of its own
# --------------------------------------------------------------------------------------


def child(args) -> int:
    import nbformat
    from nbclient import NotebookClient

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # client stacks to stderr
    nb = synthetic_notebook() if args.notebook is None else nbformat.read(args.notebook, 4)
    if args.first_cells:
        nb.cells = nb.cells[: args.first_cells]
    cwd = str(Path(args.notebook).parent) if args.notebook else os.getcwd()
    started = time.monotonic()
    marks = {}

    def say(**event):
        event["t"] = round(time.monotonic() - started, 2)
        print(json.dumps(event), flush=True)

    def on_cell_start(cell, cell_index):
        marks[cell_index] = time.monotonic()
        say(event="cell-start", cell=cell_index)

    def on_cell_executed(cell, cell_index, execute_reply):
        say(
            event="cell-done",
            cell=cell_index,
            seconds=round(time.monotonic() - marks.get(cell_index, started), 2),
            status=execute_reply["content"].get("status"),
        )

    class Client(NotebookClient):
        def on_comm_open_jupyter_widget(self, msg):
            # --no-output-widgets: no mimic of the Output widget, which otherwise sends each
            # captured output back to the kernel on the shell channel while the client waits
            # for that channel's execute_reply.
            return None if args.no_output_widgets else super().on_comm_open_jupyter_widget(msg)

    if args.no_widget_sync:
        # --no-widget-sync: keep the mimic (outputs still land in the widget state saved in
        # the notebook) but do not send them back to the kernel on the shell channel.
        from nbclient.output_widget import OutputWidget

        OutputWidget.sync_state = lambda self: None

    # As jupyter-cache's single_nb_execution calls nbclient.execute for jupyter-book.
    client = Client(
        nb,
        timeout=args.timeout,
        allow_errors=False,
        record_timing=False,
        kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": cwd}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    say(event="start")
    client.execute()
    kernel_version = None
    if args.notebook is None:
        text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
        kernel_version = text.split()[1] if text.startswith("ipykernel") else None
    say(event="finished", kernel_ipykernel=kernel_version)
    return 0


# --------------------------------------------------------------------------------------
# Parent: N runs, each watched
# --------------------------------------------------------------------------------------


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# Run by the kernel at start-up (an IPython startup file): on SIGUSR1 the kernel writes the
# stacks of all its threads to the file named in HANG_REPRO_KERNEL_STACKS.
KERNEL_STARTUP = """\
def _hang_repro_stacks():
    import faulthandler, os, signal
    path = os.environ.get("HANG_REPRO_KERNEL_STACKS")
    if path:
        faulthandler.register(signal.SIGUSR1, file=open(path, "w"), all_threads=True)
_hang_repro_stacks()
del _hang_repro_stacks
"""


PROBE = """\
print("last cell the kernel received:", repr(get_ipython().user_ns["In"][-2][:160]))
"""


def probe_kernels(pids: list[int]) -> list[str]:
    """Ask each stalled kernel, through a second client, what it last received.

    This tells a request the kernel never got (or never ran) from a reply or output that
    the first client never got; and whether the kernel still answers at all.
    """
    from jupyter_client import BlockingKernelClient

    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "ipykernel_launcher" not in argv or "-f" not in argv:
            continue
        lines = []
        kc = BlockingKernelClient(connection_file=argv[argv.index("-f") + 1])
        try:
            kc.load_connection_file()
            kc.start_channels()
            kc.wait_for_ready(timeout=10)

            def hook(msg, lines=lines):
                if msg["msg_type"] == "stream":
                    lines.extend(msg["content"]["text"].splitlines())

            reply = kc.execute_interactive(PROBE, timeout=20, output_hook=hook)
            lines.append(f"probe reply: {reply['content'].get('status')}")
        except Exception as error:  # noqa: BLE001 - a diagnosis, whatever happens
            lines.append(f"kernel {pid} did not answer a second client: {error!r}")
        finally:
            kc.stop_channels()
        found.append(f"kernel {pid}: " + " | ".join(lines))
    return found


def one_run(index: int, args, wd, workdir: Path, run_limit: float) -> dict:
    stacks = workdir / f"kernel-stacks-{index}.txt"
    stderr_path = workdir / f"client-stderr-{index}.txt"
    ipython_dir = workdir / "ipython"
    startup = ipython_dir / "profile_default" / "startup" / "00-hang-repro.py"
    startup.parent.mkdir(parents=True, exist_ok=True)
    startup.write_text(KERNEL_STARTUP)
    env = dict(
        os.environ,
        HANG_REPRO_KERNEL_STACKS=str(stacks),
        PYTHONUNBUFFERED="1",
        IPYTHONDIR=str(ipython_dir),
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--timeout", str(args.timeout)]
    if args.first_cells:
        cmd += ["--first-cells", str(args.first_cells)]
    if args.no_output_widgets:
        cmd += ["--no-output-widgets"]
    if args.no_widget_sync:
        cmd += ["--no-widget-sync"]
    if args.notebook:
        cmd += ["--notebook", str(Path(args.notebook).resolve())]
    started = last = time.monotonic()
    result = {
        "run": index,
        "outcome": None,
        "wall_s": None,
        "slowest_cell_s": 0.0,
        "last_event": None,
    }
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        buf = b""
        while True:
            now = time.monotonic()
            if now - last > args.stall_seconds:
                result["outcome"] = "stall"
                break
            if now - started > run_limit:
                result["outcome"] = "run-limit"
                break
            if sel.select(timeout=1.0):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    last = time.monotonic()
                    result["last_event"] = event
                    if event.get("event") == "cell-done" and (
                        event["seconds"] >= result["slowest_cell_s"]
                    ):
                        result["slowest_cell_s"] = event["seconds"]
                        result["slowest_cell"] = event["cell"]
                    if event.get("event") == "finished":
                        result["kernel_ipykernel"] = event.get("kernel_ipykernel")
        sel.close()
        if result["outcome"] is None:
            status = proc.wait()
            result["outcome"] = "ok" if status == 0 else f"error (exit {status})"
        else:
            # Diagnose before killing: who is still there, busy or idle, and where.
            tree = wd.descendants(os.getpid())
            before = {pid: cpu_seconds(pid) for pid in tree}
            time.sleep(2.0)
            result["processes"] = []
            for pid in tree:
                after = cpu_seconds(pid)
                busy = (
                    None if after is None or before[pid] is None else round(after - before[pid], 2)
                )
                result["processes"].append(f"{wd.describe(pid)} | cpu in 2 s: {busy}")
            result["probe"] = probe_kernels(tree)
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGUSR1)  # faulthandler in client (and kernel)
                except OSError:
                    pass
            time.sleep(1.0)
            wd.kill_tree(proc, grace=3.0)
    result["wall_s"] = round(time.monotonic() - started, 1)
    if result["outcome"] != "ok":
        result["client_stderr"] = str(stderr_path)
        has_stacks = stacks.exists() and stacks.stat().st_size > 0
        result["kernel_stacks"] = str(stacks) if has_stacks else None
    return result


def parent(args) -> int:
    wd = _watchdog()
    wd.become_subreaper()  # a kernel orphaned by its client still gets collected
    info = versions()
    print("versions:", " ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    print(f"python: {sys.executable}", flush=True)
    what = args.notebook or "synthetic notebook"
    if args.first_cells:
        what += f" (first {args.first_cells} cells)"
    if args.no_output_widgets:
        what += ", without nbclient's Output-widget mimic"
    if args.no_widget_sync:
        what += ", Output-widget mimic not syncing to the kernel"
    print(
        f"notebook: {what}; runs: {args.runs}; stall: no cell completed for "
        f"{args.stall_seconds:g} s; cell timeout {args.timeout} s",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="hang-repro-"))
    out = open(args.out, "a") if args.out else None
    deadline = time.monotonic() + args.max_minutes * 60
    results = []
    for i in range(1, args.runs + 1):
        left = deadline - time.monotonic()
        if left < 30:
            print(
                f"stopping after {i - 1} runs: --max-minutes {args.max_minutes:g} reached",
                flush=True,
            )
            break
        r = one_run(i, args, wd, workdir, min(args.run_limit, left))
        r["versions"] = info
        results.append(r)
        line = (
            f"run {i:3d}: {r['outcome']:<10} wall {r['wall_s']:6.1f} s, "
            f"slowest cell {r['slowest_cell_s']:5.1f} s (cell {r.get('slowest_cell')})"
        )
        if r.get("kernel_ipykernel"):
            line += f", kernel ran ipykernel {r['kernel_ipykernel']}"
        print(line, flush=True)
        if r["outcome"] != "ok":
            print(f"  last event: {r['last_event']}", flush=True)
            for p in r.get("processes", []) + r.get("probe", []):
                print(f"  {p}", flush=True)
            print(f"  client stderr (with its stacks): {r['client_stderr']}", flush=True)
            if r.get("kernel_stacks"):
                print(f"  kernel stacks: {r['kernel_stacks']}", flush=True)
        if out:
            out.write(json.dumps(r) + "\n")
            out.flush()
    walls = [r["wall_s"] for r in results if r["outcome"] == "ok"]
    bad = [r for r in results if r["outcome"] != "ok"]
    summary = (
        f"summary: ipykernel {info['ipykernel']}: {len(results)} runs, "
        f"{sum(r['outcome'] == 'stall' for r in bad)} stalls, "
        f"{sum(r['outcome'] != 'stall' for r in bad)} other failures"
    )
    if walls:
        summary += (
            f"; wall per ok run min {min(walls):.1f} / median "
            f"{statistics.median(walls):.1f} / max {max(walls):.1f} s"
        )
    print(summary, flush=True)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--notebook", help="a notebook to execute instead of the synthetic one")
    parser.add_argument(
        "--timeout",
        type=int,
        default=600,
        help="nbclient per-cell timeout, as in _config.yml (default 600)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=90,
        help="a run stalls when no cell completes for this long",
    )
    parser.add_argument(
        "--run-limit",
        type=float,
        default=900,
        help="seconds one run may take in all before it is killed",
    )
    parser.add_argument(
        "--max-minutes", type=float, default=60, help="stop starting new runs after this long"
    )
    parser.add_argument(
        "--first-cells",
        type=int,
        default=0,
        help="execute only the notebook's first N cells (markdown included)",
    )
    parser.add_argument(
        "--no-output-widgets",
        action="store_true",
        help="diagnosis: turn off nbclient's Output-widget mimic",
    )
    parser.add_argument(
        "--no-widget-sync",
        action="store_true",
        help="diagnosis: the mimic does not send outputs back to the kernel",
    )
    parser.add_argument("--out", help="append one JSON line per run to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return child(args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
