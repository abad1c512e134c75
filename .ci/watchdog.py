#!/usr/bin/env python3
"""Run a command, pass its output through, and fail fast if it goes quiet.

    python .ci/watchdog.py --name "jupyter-book build" --quiet-minutes 12 \
        --limit-minutes 40 -- jupyter-book build .

The command's stdout and stderr are merged and streamed through as they come. If no new
output arrives for --quiet-minutes (or the command runs past --limit-minutes), the watchdog
lists what is still running under it, stops the whole process tree, including Jupyter
kernels (jupyter_client starts each kernel in a session of its own, so killing the
command's process group alone would leave them running), prints one line saying why, and
exits with 124. Otherwise it exits with the command's own status (128+N for signal N).

Written for CI, where a notebook execution that stalls (kernel and client both idle, the
per-cell timeout never firing; see .ci/hang_repro.py) would otherwise sit until the CI's
hard limit and report nothing. Standard library only, so it runs before any install.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time

TIMEOUT_STATUS = 124
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants (a kernel whose client died) re-parent to this process.

    Linux only; without it the tree is still walked, but a kernel orphaned before the
    walk would be missed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """PIDs of every process below root (not root itself), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        if fields and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(0), []):
            if child not in found:
                found.append(child)
                queue.append(child)
    return found


def describe(pid: int) -> str:
    """'PID STATE cpu=Ns CMDLINE' for the report of what was still running."""
    fields = _proc_stat(pid)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = "?"
    if not fields:
        return f"{pid} (gone) {cmd[:160]}"
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return f"{pid} state={fields[0]} cpu={cpu:.1f}s {cmd[:160]}"


def kill_tree(child: subprocess.Popen, grace: float = 5.0, log=print) -> None:
    """SIGTERM the command, its process group and every descendant; SIGKILL what is left."""
    own_pgrp = os.getpgrp()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [child.pid, *descendants(os.getpid())]
        groups = set()
        for pid in pids:
            fields = _proc_stat(pid)
            if fields and int(fields[2]) != own_pgrp:
                groups.add(int(fields[2]))
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, sig)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            reap(keep=child.pid)
            if child.poll() is not None and not descendants(os.getpid()):
                return
            time.sleep(0.1)
    reap(keep=child.pid)
    left = descendants(os.getpid())
    if left:
        log(f"ci: watchdog could not stop: {', '.join(map(str, left))}")


def reap(keep: int | None = None) -> None:
    """Collect orphans that re-parented to us as subreaper and have exited.

    Only zombies found in /proc are waited for, by PID, and never `keep` (the command
    itself, whose exit status subprocess must collect).
    """
    me = os.getpid()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == keep:
            continue
        fields = _proc_stat(int(entry))
        if fields and fields[0] == "Z" and int(fields[1]) == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry), os.WNOHANG)


def minutes(value: float) -> str:
    """12 -> '12', 63.2667 -> '63.3', 0.05 -> '0.05'."""
    return f"{value:.1f}".removesuffix(".0") if value >= 1 else f"{value:.2g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s [--name NAME] [--quiet-minutes M] [--limit-minutes M] -- COMMAND...",
    )
    parser.add_argument("--name", help="what to call the command in the failure line")
    parser.add_argument(
        "--quiet-minutes",
        type=float,
        default=0,
        help="fail when the command prints nothing for this long (0: no limit)",
    )
    parser.add_argument(
        "--limit-minutes",
        type=float,
        default=None,
        help="fail when the command runs longer than this in all (default: no limit; "
        "0 or less: fail at once, there is no time left)",
    )
    parser.add_argument(
        "--hint",
        default="a notebook execution stalled (see .ci/hang_repro.py)",
        help="what a quiet stall most likely means, for the failure line",
    )
    parser.add_argument(
        "--limit-hint",
        default="its time limit ran out",
        help="what running past --limit-minutes means, for the failure line",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    name = args.name or " ".join(command)
    out = sys.stdout.buffer

    def say(line: str) -> None:
        out.write(f"\n{line}\n".encode())
        out.flush()

    if args.limit_minutes is not None and args.limit_minutes <= 0:
        say(f"ci: no time left to run '{name}'; failing instead of waiting for the CI limit")
        return TIMEOUT_STATUS

    become_subreaper()
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        say(f"ci: could not start '{name}': {error}")
        return 127

    # Forward a termination of the watchdog itself to the whole tree.
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    started = last_output = time.monotonic()
    quiet = args.quiet_minutes * 60 if args.quiet_minutes > 0 else None
    limit = args.limit_minutes * 60 if args.limit_minutes is not None else None
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    fd = child.stdout.fileno()
    reason = None
    eof = False
    exited_at = None
    while True:
        now = time.monotonic()
        waits = [1.0]
        if quiet is not None:
            waits.append(last_output + quiet - now)
        if limit is not None:
            waits.append(started + limit - now)
        wait = max(0.0, min(waits))
        if eof:  # output closed; the command may still be running
            time.sleep(min(wait, 0.2))
        for _ in [] if eof else selector.select(timeout=wait):
            try:
                chunk = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not chunk:
                eof = True
                selector.unregister(child.stdout)
                break
            out.write(chunk)
            out.flush()
            last_output = time.monotonic()
        now = time.monotonic()
        if stopping:
            reason = f"ci: '{name}' stopped by signal {stopping[0]}"
            break
        if exited_at is None and child.poll() is not None:
            exited_at = now
        if exited_at is not None and (eof or now - exited_at >= 5.0):
            # Done; or the command has exited but something it started (an orphaned
            # kernel) still holds its output open: stop waiting for that.
            break
        if quiet is not None and now - last_output >= quiet:
            reason = (
                f"ci: no output from '{name}' for {minutes(args.quiet_minutes)} minutes: "
                f"{args.hint}; failing instead of waiting for the CI limit"
            )
            break
        if limit is not None and now - started >= limit:
            reason = (
                f"ci: '{name}' still running after {minutes(args.limit_minutes)} minutes: "
                f"{args.limit_hint}; failing instead of waiting for the CI limit"
            )
            break
        reap(keep=child.pid)
    selector.close()

    if reason is None:
        status = child.wait()
        reap()
        # Output closed and the command exited: anything it left running (a kernel that
        # outlived its client) would keep CI waiting, so stop it too.
        if descendants(os.getpid()):
            kill_tree(child, grace=2.0, log=say)
        return 128 - status if status < 0 else status

    running = [describe(pid) for pid in descendants(os.getpid())]
    say("ci: still running under the watchdog:\n  " + "\n  ".join(running))
    kill_tree(child, log=say)
    say(reason)
    return TIMEOUT_STATUS if not stopping else 128 + stopping[0]


if __name__ == "__main__":
    sys.exit(main())
