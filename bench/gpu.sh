#!/usr/bin/env bash
# bench/gpu.sh: the GPU benchmarks and the seed-claim experiment, in one call of the
# device tool, within a time budget; the results come back through $OUT.
#
#   OUT=... bash bench/gpu.sh                 # on the GPU machine (the device tool sets OUT)
#   OUT=$(mktemp -d) bash bench/gpu.sh --tiny # here, on the CPU, in about 2 minutes (below)
#   bash bench/gpu.sh --merge FILES_AT [--results-file PATH] [--allow-cpu]
#   bash bench/gpu.sh --restore FILES_AT [--into DIR]  # unpack the experiment's folders
#
# Stages, in this order, each under `timeout`, each skipped with a line when the time left
# can't hold its minimum, each one's failure logged (exit status, "timed out" for 124/137)
# without stopping the others:
#   preflight   nvidia-smi's GPU, TensorFlow's version and the GPUs it sees. Without
#               TensorFlow (or, outside --tiny, without a GPU that TensorFlow sees) the
#               training stages are skipped with a line; KID (numpy) still runs.
#   tp-*        bench/train_throughput.py, the exact models at 64 px, width 1.0, 2 rounds of
#               2 timed windows of 50 updates after a warm-up window, one process per setting,
#               most important first:
#                 tp-b32-mixed-xla    improved pair, batch 32, mixed_float16, XLA on; all of
#                                     bare loop, fit (1 step/call), fit k steps/call,
#                                     ganlib.train, train_on_batch loop
#                 tp-b32-f32-noxla    the same at float32, XLA off (the notebook's settings)
#                 kid                 bench/kid_speed.py --skip-big (numpy, the machine's CPU)
#                 tp-b128-mixed-xla   batch 128, mixed, XLA on: bare, fit, fit k
#                 tp-b32-f32-xla      float32, XLA on: bare, fit, fit k
#                 tp-b32-mixed-noxla  mixed, XLA off: bare, fit, fit k
#                 tp-b128-f32-noxla   batch 128, float32, XLA off: bare, fit k, train_on_batch
#                 tp-baseline-b32     the baseline pair, batch 32, mixed, XLA on: bare, fit,
#                                     fit k, train_on_batch
#   experiment  python -m ganlib experiment seed-claim --image-size 64 --width 1.0 (its
#               defaults: --out book/results/seed-claim, --work runs/experiments/seed-claim/
#               toy-faces-4992_64px_w1; it trains each of its variants for each of its
#               seeds, 31,200 updates a run, one run after the other, and resumes from the
#               newest checkpoint when run again),
#               under `timeout` with what is left of the budget less 30 s for packing (the
#               checkpoints are written atomically, so a kill loses at most one epoch);
#               skipped with a line where that command does not exist. --tiny: --quick, its
#               folders under a scratch folder, never the tree's book/results.
#   report      the experiment's folders packed (below), then results.jsonl -> RESULTS-gpu.md
#               through the --merge step (so that file shows exactly what --merge would
#               append to bench/RESULTS.md).
#
# --tiny (or GPU_TINY=1): 32 px, width 0.125, 1 window of 2 updates; of the tp-* stages only
# tp-b32-f32-noxla (all five methods) and tp-b32-mixed-xla (bare, fit k: XLA compiles slowly
# on a CPU) run, the others are skipped with a line; KID --tiny; the experiment --quick.
# Its "run" record says tiny, its rows say "gpu.sh --tiny on the CPU" and their device is the
# CPU, so --merge refuses them.
#
# Budget: GPU_BUDGET_SECONDS (default 480, 8 minutes; 180 with --tiny) for the whole script,
# stages included; no stage's timeout reaches past it. GPU_STAGES (default "all") picks
# stages by name, space- or comma-separated, with "tp" for every tp-* stage: e.g.
# GPU_STAGES=experiment gives a later call's whole budget to the experiment. PYTHON (default
# python3) is the interpreter. The device tool's call needs timeout_s of at least the budget
# plus a minute (the tool's own limit is 600 s a command).
#
# What comes back in $OUT (the tool returns at most 8 files, 16 MiB each, 64 MiB together):
#   gpu.log                     everything the stages printed, with a line per stage
#   results.jsonl               one JSON object a line: "run" (GPU, TensorFlow, tiny or not),
#                               one per stage ("stage": name, exit status, seconds, status),
#                               and the figures: "train_throughput" (bench/train_throughput.py
#                               --json: rates, ratios, full_run_s, the table row) and
#                               "kid_speed" (bench/kid_speed.py --json)
#   RESULTS-gpu.md              the rows and the GPU goal table that --merge would append
#   seed-claim-out.tar.gz       book/results/seed-claim as the experiment left it
#   seed-claim-work.tar.part0-3 runs/experiments/seed-claim (checkpoints), split in 15 MiB parts
#
# Merge (on this side, after the files come back; FILES_AT is the tool's files_at):
#   bash bench/gpu.sh --merge FILES_AT
# appends the complete train_throughput rows to the throughput table of bench/RESULTS.md,
# the KID rows to the KID table (their device is the GPU machine's CPU: KID is numpy), and
# one row per throughput setting to a goal table in its "## GPU" section: best fit's rate,
# the anime-face project's whole run (31,200 updates) at that rate against the 120 s goal
# (at batch 32), fit / bare against 0.95 and best fit / train_on_batch against 5x. It refuses
# (exit status 2, nothing written) a run whose "run" record names no GPU, a --tiny run, or any
# row measured off the GPU, unless --allow-cpu; so a CPU or tiny run can't reach the real
# bench/RESULTS.md by accident. --results-file PATH writes elsewhere (the tests use it).
#
# Resuming the experiment across calls. The device tool copies the working tree (under 1 MiB
# of tracked files today) plus the ignored paths named in `carry` (64 MiB together) to the
# machine, and returns only $OUT. So:
#   1. call:  run(command="bash bench/gpu.sh", timeout_s=560)
#      then:  bash bench/gpu.sh --merge FILES_AT && bash bench/gpu.sh --restore FILES_AT
#   2. call:  run(command="GPU_STAGES=experiment bash bench/gpu.sh",
#                 carry=["runs/experiments/seed-claim"], timeout_s=560)
#      then:  bash bench/gpu.sh --restore FILES_AT       (and so on)
#      (book/results/seed-claim travels with the tree once restored: it is tracked, 2 MB at
#      most; its provenance.json says which variants are finished)
# --restore replaces runs/experiments/seed-claim with the returned parts and unpacks
# book/results/seed-claim (tracked files: the lead reviews them before any commit);
# --into DIR unpacks elsewhere. The experiment resumes from what it finds there; this
# script only moves the folders.
# What fits. A checkpoint (ckpt-STEP.npz: both models' weights and both Adam optimizers'
# two slots, float32) of the improved pair at 64 px holds 3 x (3,533,443 + 547,969) = 12.2 M
# numbers, about 49 MB; the baseline pair's 3 x (3,979,651 + 404,801) = 13.2 M, about 53 MB.
# The tool returns at most 60 MiB here (four 15 MiB parts beside the three small files) and
# carries 64 MiB with the tree (under 1 MiB). So ONE variant's checkpoint travels, not two,
# and not the 3 per run folder that ganlib keeps. Before packing, this script therefore
# deletes every checkpoint but the newest of each run folder, and every checkpoint of a
# variant that provenance.json lists as finished (the experiment decides "finished" from
# history.csv, which stays). As the experiment trains its variants one after the other, the
# unfinished one is the only one with a checkpoint, which fits. If the folder is still over
# 60 MiB (say a call ends inside the second variant with the first not yet recorded as
# finished), the script says so and returns none of it: the next call starts afresh.
# Time: the session's 15 minutes of device time hold a machine start (a minute or two) and
# about one 8-minute call; the experiment at the claim's own speed (2 minutes a model) fits
# a call of its own (GPU_STAGES=experiment), at the notebook's (87 minutes a model) nowhere.
#
# An honest limit found while writing this: the GPU machine's image (KINDS.md, read
# 2026-11-17) has no TensorFlow and no Keras, and nothing can be downloaded there.
# TensorFlow cannot travel either: installed it takes about 1.9 GB (this venv's, Python
# 3.11; the machine runs 3.12), and a GPU build needs the CUDA 12 libraries (cuDNN, cuBLAS;
# the image has CUDA 13's), far over the 64 MiB a call may carry. If a .whl folder with
# wheels is carried, preflight installs it (--target /tmp/site); otherwise the training and
# experiment stages are skipped with a line saying why, and only KID runs. Until the image
# has TensorFlow (or ganlib runs on Keras's JAX backend, which the image has), this script
# cannot record a GPU figure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT:$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
WORK_REL=runs/experiments/seed-claim
BOOK_REL=book/results/seed-claim
PART_BYTES=$((15 * 1024 * 1024))
MAX_PARTS=4

merge() {  # FILES_AT [--results-file PATH] [--allow-cpu]
    "$PY" - "$@" <<'PYEOF'
import argparse
import json
import sys
from pathlib import Path

import kid_speed
import train_throughput

parser = argparse.ArgumentParser(prog="bench/gpu.sh --merge")
parser.add_argument("files_at", type=Path)
parser.add_argument("--results-file", type=Path, default=train_throughput.RESULTS)
parser.add_argument("--allow-cpu", action="store_true")
args = parser.parse_args()
source = args.files_at / "results.jsonl" if args.files_at.is_dir() else args.files_at
records = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
runs = [r for r in records if r.get("kind") == "run"]
tps = [r for r in records if r.get("kind") == "train_throughput" and r.get("complete")]
kids = [r for r in records if r.get("kind") == "kid_speed" and r.get("complete")]
problems = []
if not runs:
    problems.append("no 'run' record")
for run in runs:
    if not run.get("gpu"):
        problems.append("the run names no GPU")
    if run.get("tiny"):
        problems.append("a --tiny run")
problems += [f"row measured on {r['device']!r}, not a GPU" for r in tps if not r.get("on_gpu")]
if problems and not args.allow_cpu:
    print(f"refusing to merge {source}: {'; '.join(sorted(set(problems)))} "
          "(--allow-cpu merges anyway)", file=sys.stderr)
    sys.exit(2)
gpu = runs[0].get("gpu") if runs else ""
for r in tps:
    train_throughput.record(r["row"], args.results_file)
for r in kids:
    rows = [row.replace("| " + r["device"], f"| {r['device']}, the CPU of the {gpu or 'CPU'} machine", 1)
            for row in r["rows"]] if gpu else r["rows"]
    kid_speed.record(rows, args.results_file)

# the goal table in the GPU section
SECTION = "## GPU"
TEXT = (
    "Goals of the anime-face claim, one row per bench/train_throughput.py setting run by "
    "bench/gpu.sh: best fit = the faster of fit at 1 and at k steps per call; whole run = "
    "31,200 updates (the anime-face project's 200 epochs of 156) at the row's batch size at "
    "best fit's rate, goal at most 120 s for the improved pair at batch 32 on one H100-class "
    "GPU; fit / bare (1 step per call) goal at least 0.95; best fit / tob goal at least 5x."
)
HEADER = ("| date | device | settings | bare (img/s) | best fit (img/s) | tob (img/s) "
          "| whole run (s) | fit / bare | best fit / bare | best fit / tob |")
RULE = "|---|---|---|---|---|---|---|---|---|---|"


def cell(value, form):
    return "-" if value is None else format(value, form)


goal_rows = []
for r in tps:
    rates = r["rates"]
    fits = [rates[m] for m in ("fit", "fit_k") if m in rates]
    best = max(fits) if fits else None
    bare, tob = rates.get("bare"), rates.get("tob")
    whole = 31_200 * r["batch_size"] / best if best else None
    goal_rows.append(
        f"| {r['date']} | {r['device']} | {r['settings']} | {cell(bare, '.1f')} "
        f"| {cell(best, '.1f')} | {cell(tob, '.1f')} | {cell(whole, '.0f')} "
        f"| {cell(r['ratios'].get('fit_over_bare'), '.3f')} "
        f"| {cell(best / bare if best and bare else None, '.3f')} "
        f"| {cell(best / tob if best and tob else None, '.2f')}{'x' if best and tob else ''} |"
    )
if goal_rows:
    path = args.results_file
    lines = path.read_text().rstrip("\n").split("\n") if path.exists() else []
    if SECTION not in lines:
        lines += ["", SECTION, ""]
    start = lines.index(SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    body = [line for line in lines[start + 1 : end] if not line.startswith("No GPU figure is recorded")]
    if HEADER not in body:
        while body and not body[-1].strip():
            body.pop()
        body += ["", TEXT, "", HEADER, RULE]
    last = max(i for i, line in enumerate(body) if line.startswith("|"))
    body[last + 1 : last + 1] = goal_rows
    while body and not body[-1].strip():
        body.pop()
    lines[start + 1 : end] = body + ([""] if end < len(lines) else [])
    path.write_text("\n".join(lines) + "\n")
print(f"merged {len(tps)} throughput and {sum(len(r['rows']) for r in kids)} KID rows "
      f"into {args.results_file}")
PYEOF
}

restore() {  # FILES_AT [--into DIR]
    local from=$1 into=$ROOT
    [[ ${2:-} == --into ]] && into=${3:?--into DIR}
    if compgen -G "$from/seed-claim-work.tar.part*" >/dev/null; then
        rm -rf "${into:?}/$WORK_REL"
        cat "$from"/seed-claim-work.tar.part* | tar -x -C "$into"
        echo "restored $into/$WORK_REL ($(du -sh "$into/$WORK_REL" | cut -f1))"
    else
        echo "no seed-claim-work parts in $from: $WORK_REL left as it is"
    fi
    if [[ -f $from/seed-claim-out.tar.gz ]]; then
        tar -xzf "$from/seed-claim-out.tar.gz" -C "$into"
        echo "unpacked $into/$BOOK_REL (review it before committing)"
    fi
}

case ${1:-} in
    --merge) shift; merge "$@"; exit ;;
    --restore) shift; restore "${1:?--restore FILES_AT}" "${@:2}"; exit ;;
    --tiny) TINY=1; shift ;;
    "") TINY=${GPU_TINY:-0} ;;
    *) echo "usage: bash bench/gpu.sh [--tiny | --merge FILES_AT [...] | --restore FILES_AT]" >&2; exit 64 ;;
esac

: "${OUT:?set OUT to an empty folder (the device tool sets it)}"
mkdir -p "$OUT"
LOG=$OUT/gpu.log
JSONL=$OUT/results.jsonl
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
if [[ $TINY == 1 ]]; then BUDGET=${GPU_BUDGET_SECONDS:-180}; else BUDGET=${GPU_BUDGET_SECONDS:-480}; fi
STAGES=" $(echo "${GPU_STAGES:-all}" | tr ',' ' ') "
START=$SECONDS

say() { echo "[gpu.sh $((SECONDS - START))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - (SECONDS - START))); }
wanted() {  # stage name -> whether GPU_STAGES picks it
    [[ $STAGES == *" all "* || $STAGES == *" $1 "* || ($1 == tp-* && $STAGES == *" tp "*) ]]
}
jsonline() {  # FILE -> one line of results.jsonl
    "$PY" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$1" >>"$JSONL"
}
stage_record() {  # name rc seconds status
    printf '{"kind": "stage", "name": "%s", "rc": %s, "seconds": %s, "status": "%s"}\n' \
        "$1" "$2" "$3" "$4" >>"$JSONL"
}

# stage NAME MIN_SECONDS CAP_SECONDS COMMAND...: run COMMAND under timeout, within the budget
stage() {
    local name=$1 min=$2 cap=$3 rc=0 began status
    shift 3
    wanted "$name" || return 0
    local t=$(($(left) - 2))
    if ((t < min)); then
        say "skip $name: $((t < 0 ? 0 : t)) s left, it needs at least $min s"
        stage_record "$name" null 0 skipped
        return 0
    fi
    ((t > cap)) && t=$cap
    say "start $name (timeout $t s): $*"
    began=$SECONDS
    set +e
    timeout -k 3 $((t - 3)) "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    set -e
    case $rc in 0) status=ok ;; 124 | 137) status="timed out" ;; *) status="failed" ;; esac
    say "end $name: $status (exit status $rc, $((SECONDS - began)) s)"
    stage_record "$name" "$rc" $((SECONDS - began)) "$status"
    if [[ -f $SCRATCH/$name.json ]]; then jsonline "$SCRATCH/$name.json"; fi
    return 0
}

# ------------------------------------------------------------------ preflight
say "budget $BUDGET s, stages:${STAGES% }, tiny=$TINY, python $PY, root $ROOT"
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
say "nvidia-smi: ${GPU_NAME:-no GPU}"
if [[ $TINY == 1 ]]; then GPU_NAME=""; fi  # a tiny run's figures are never GPU figures
tf_probe() {
    timeout 120 "$PY" -c 'import tensorflow as tf, keras; print(tf.__version__, len(tf.config.list_physical_devices("GPU")))' 2>>"$LOG" | tail -1
}
TF_INFO=$(tf_probe || true)
if [[ -z $TF_INFO && -d $ROOT/.whl ]] && compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
    say "TensorFlow missing; installing the carried wheels in .whl into /tmp/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$ROOT"/.whl/*.whl >>"$LOG" 2>&1 || say "pip install failed"
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
    TF_INFO=$(tf_probe || true)
fi
TF_VERSION=${TF_INFO%% *}
TF_GPUS=${TF_INFO##* }
TRAIN=1
if [[ -z $TF_INFO ]]; then
    TRAIN=0
    say "TensorFlow/Keras cannot be imported with $PY: the training and experiment stages are skipped (see this script's header)"
elif [[ $TINY != 1 && $TF_GPUS == 0 ]]; then
    TRAIN=0
    say "TensorFlow $TF_VERSION sees no GPU: the training and experiment stages are skipped (64 px, width 1.0 on a CPU would take minutes a step)"
else
    say "TensorFlow $TF_VERSION, GPUs it sees: $TF_GPUS"
fi
printf '{"kind": "run", "date": "%s", "gpu": "%s", "tensorflow": "%s", "tf_gpus": "%s", "tiny": %s, "budget_s": %s}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$GPU_NAME" "$TF_VERSION" "$TF_GPUS" \
    "$([[ $TINY == 1 ]] && echo true || echo false)" "$BUDGET" >>"$JSONL"

# ------------------------------------------------------------------ throughput and KID
if [[ $TINY == 1 ]]; then
    SIZE=(--image-size 32 --width 0.125 --steps 2 --windows 1 --rounds 1 --note "gpu.sh --tiny on the CPU")
    TP_MIN=20 TP_CAP=60 KID_ARGS=(--tiny) EXP_MIN=20
else
    SIZE=(--image-size 64 --width 1.0 --steps 50 --windows 2 --rounds 2)
    TP_MIN=60 TP_CAP=150 KID_ARGS=(--repeats 3 --skip-big) EXP_MIN=60
fi
throughput() {  # name cap extra-args...
    local name=$1 cap=$2
    shift 2
    if [[ $TRAIN != 1 ]]; then
        wanted "$name" && say "skip $name: no TensorFlow with a GPU here" && stage_record "$name" null 0 skipped
        return 0
    fi
    if [[ $TINY == 1 ]]; then
        cap=$TP_CAP
        case $name in
            tp-b32-f32-noxla) ;;
            tp-b32-mixed-xla) set -- "$@" --methods bare,fit_k ;;  # XLA compiles slowly on a CPU
            *)
                wanted "$name" && say "skip $name: --tiny runs two settings only" && stage_record "$name" null 0 skipped
                return 0
                ;;
        esac
    fi
    stage "$name" "$TP_MIN" "$cap" "$PY" "$ROOT/bench/train_throughput.py" "${SIZE[@]}" \
        --json "$SCRATCH/$name.json" --no-record "$@"
}
throughput tp-b32-mixed-xla 150 --batch-size 32 --mixed-precision on --xla on
throughput tp-b32-f32-noxla 120 --batch-size 32 --mixed-precision off --xla off
stage kid 20 90 "$PY" "$ROOT/bench/kid_speed.py" "${KID_ARGS[@]}" --json "$SCRATCH/kid.json" --no-record
throughput tp-b128-mixed-xla 75 --batch-size 128 --mixed-precision on --xla on --methods bare,fit,fit_k
throughput tp-b32-f32-xla 60 --batch-size 32 --mixed-precision off --xla on --methods bare,fit,fit_k
throughput tp-b32-mixed-noxla 60 --batch-size 32 --mixed-precision on --xla off --methods bare,fit,fit_k
throughput tp-b128-f32-noxla 75 --batch-size 128 --mixed-precision off --xla off --methods bare,fit_k,tob
throughput tp-baseline-b32 90 --model baseline --batch-size 32 --mixed-precision on --xla on --methods bare,fit,fit_k,tob

# ------------------------------------------------------------------ the seed-claim experiment
# Full: the experiment's own defaults (--work runs/experiments/seed-claim/<data>_64px_w1,
# --out book/results/seed-claim) in the tree's copy. --tiny: --quick, both folders under
# the scratch folder, so a test never touches the tree's results; packed the same way.
if [[ $TINY == 1 ]]; then BASE=$SCRATCH; else BASE=$ROOT; fi
PACK_RESERVE=30
if wanted experiment; then
    if [[ $TRAIN != 1 ]]; then
        say "skip experiment: no TensorFlow with a GPU here"
        stage_record experiment null 0 skipped
    elif ! help=$(cd "$ROOT" && timeout 60 "$PY" -m ganlib experiment seed-claim --help 2>&1); then
        say "skip experiment: 'python -m ganlib experiment seed-claim' does not exist in this tree"
        stage_record experiment null 0 skipped
    else
        EXP=(--out "$BASE/$BOOK_REL")
        if [[ $TINY == 1 ]]; then
            EXP+=(--work "$BASE/$WORK_REL/quick")
            [[ $help == *--quick* ]] && EXP+=(--quick) || EXP+=(--image-size 32 --width 0.125)
        else
            EXP+=(--image-size 64 --width 1.0)
        fi
        BUDGET=$((BUDGET - PACK_RESERVE))
        (cd "$ROOT" && stage experiment "$EXP_MIN" 100000 "$PY" -m ganlib experiment seed-claim "${EXP[@]}")
        BUDGET=$((BUDGET + PACK_RESERVE))
    fi
fi

# ------------------------------------------------------------------ report and packing
# Only the newest checkpoint of each run folder travels; a variant that provenance.json
# lists as finished (its history.csv holds every epoch) travels without checkpoints.
prune() {  # WORK_DIR PROVENANCE
    "$PY" - "$@" <<'PYEOF'
import json
import sys
from pathlib import Path

work, provenance = Path(sys.argv[1]), Path(sys.argv[2])
finished = json.loads(provenance.read_text()).get("variants_finished", []) if provenance.is_file() else []
dropped = 0
for folder in sorted({path.parent for path in work.rglob("ckpt-*.npz")}):
    checkpoints = sorted(folder.glob("ckpt-*.npz"))
    done = any(part in finished for part in folder.relative_to(work).parts)
    for path in checkpoints if done else checkpoints[:-1]:
        dropped += path.stat().st_size
        path.unlink()
print(f"pruned {dropped / 2**20:.1f} MiB of older checkpoints (finished: {finished or 'none'})")
PYEOF
}
if [[ -d $BASE/$BOOK_REL ]]; then
    tar -czf "$OUT/seed-claim-out.tar.gz" -C "$BASE" "$BOOK_REL"
    say "returned $BOOK_REL ($(du -sh "$BASE/$BOOK_REL" | cut -f1)) as seed-claim-out.tar.gz"
fi
if [[ -d $BASE/$WORK_REL ]]; then
    prune "$BASE/$WORK_REL" "$BASE/$BOOK_REL/provenance.json" 2>&1 | tee -a "$LOG" || true
    tar -cf - -C "$BASE" "$WORK_REL" | split -b "$PART_BYTES" -d -a 1 - "$OUT/seed-claim-work.tar.part"
    parts=$(find "$OUT" -maxdepth 1 -name 'seed-claim-work.tar.part*' | wc -l)
    size=$(du -sm "$BASE/$WORK_REL" | cut -f1)
    if ((parts > MAX_PARTS)); then
        rm -f "$OUT"/seed-claim-work.tar.part*
        say "NOT returned: $WORK_REL is $size MiB, over $((MAX_PARTS * 15)) MiB; the next call starts the unfinished variant afresh"
    else
        say "returned $WORK_REL ($size MiB) in $parts part(s); name it in carry next call (64 MiB with the tree)"
    fi
fi
merge "$JSONL" --results-file "$OUT/RESULTS-gpu.md" --allow-cpu 2>&1 | tee -a "$LOG" || say "report: the merge into RESULTS-gpu.md failed"
say "done in $((SECONDS - START)) s of $BUDGET; files in $OUT: $(cd "$OUT" && echo *)"
