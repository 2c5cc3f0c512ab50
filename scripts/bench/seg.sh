#!/usr/bin/env bash
# Segmentation (chapter 13) speed: training and full-slice inference of the
# book's U-Net, ours against the book's own training app and PyTorch's best
# recipe, on the same machine and data, in one sitting. Runs alone or as
# part of scripts/bench.sh (`bash scripts/bench.sh seg` runs only this).
#
#   bash scripts/bench/seg.sh              # 3 interleaved rounds, 2 threads
#   SEG_THREADS=1 bash scripts/bench/seg.sh
#   BENCH_QUICK=1 bash scripts/bench/seg.sh  # one short round: checks the script
#
# Each round runs every measurement once, in the same order, so that load
# from elsewhere spreads over all of them; the table reports medians over
# rounds. Results: bench-out/results/seg/*.jsonl and a Markdown table on
# stdout (scripts/bench/render_seg.py; bench.sh puts it in BENCHMARKS.md).
#
# Measured (batch 16, 64x64 windows, CPU, SEG_THREADS compute threads):
#   1. end to end: scripts/bench/book_seg_train.py (the book's Dataset,
#      DataLoader with 2 workers, augmentation module, UNetWrapper, Adam)
#      vs `train seg` (its default compute modes), samples/s of training;
#   2. the step alone: scripts/bench/torch_seg_step.py recipes vs `train
#      bench-step --model unet`, fp32/bf16 x contiguous/channels-last;
#   3. full-slice inference, slices/s of 512x512x7 slices, from the same two.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
THREADS=${SEG_THREADS:-2}
PY=${LUNA_PYTHON:-$HOME/.cache/luna-toolkit/venv/bin/python}
PREPCACHE=${PREPCACHE:-target/release/prepcache}
TRAIN=${TRAIN:-target/release/train}
OUT=${BENCH_OUT:-bench-out}
RESULTS=$OUT/results/seg
DATA=$OUT/seg-data-40-seed7
CACHE=$OUT/seg-cache-40-seed7
if [ "$QUICK" = 1 ]; then
    ROUNDS=${SEG_ROUNDS:-1}; SAMPLES=64; STEP_ARGS=(--steps 2 --warmup 1); RECIPES=eager,cl-bf16
else
    ROUNDS=${SEG_ROUNDS:-3}; SAMPLES=${SEG_SAMPLES:-640}; STEP_ARGS=(--steps 8 --warmup 2)
    RECIPES=${SEG_RECIPES:-eager,cl,bf16,cl-bf16}
fi
INFER=(--inference --size 512 --infer-batch 4)

say() { echo "bench seg: $*" >&2; }
[ -x "$PY" ] || { say "Python not found at $PY (scripts/setup.sh, or set LUNA_PYTHON)"; exit 1; }
[ -x "$TRAIN" ] && [ -x "$PREPCACHE" ] || { say "build first: cargo build --release -p train -p prepcache --bins"; exit 1; }

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
{
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "nproc=$(nproc)"
    echo "threads=$THREADS"
    echo "rounds=$ROUNDS"
    echo "samples=$SAMPLES"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$RESULTS/machine.env"

if [ ! -f "$CACHE/seg-train/manifest.json" ]; then
    say "writing 40 synthetic series and their segmentation cache to $CACHE"
    "$PREPCACHE" synth --out "$DATA" --series 40 --seed 7 >/dev/null
    "$PREPCACHE" seg --data "$DATA" --out "$CACHE" >/dev/null
fi

# Records a command line for the report (once), then runs it, appending
# its JSON lines to RESULTS/NAME.jsonl. Usage: run NAME CMD...
run() {
    local name=$1
    shift
    [ -f "$RESULTS/$name.cmd" ] || printf '%q ' "$@" | sed 's/ $//' >"$RESULTS/$name.cmd"
    "$@" | grep '^{' >>"$RESULTS/$name.jsonl"
}

# `train seg`'s training line, "E1 trn N samples in Xs (Y samples/s; waited …",
# as one JSON line.
ours_end_to_end() {
    local runs=$OUT/seg-runs
    rm -rf "$runs"
    "$@" --runs "$runs" >"$RESULTS/train_seg.stdout" 2>&1
    sed -n 's/^E1 trn *\([0-9]*\) samples in \([0-9.]*\)s (\([0-9.]*\) samples\/s; waited \([0-9.]*\)s.*/{"samples": \1, "seconds": \2, "samples_per_s": \3, "waited_s": \4}/p' \
        "$RESULTS/train_seg.stdout"
}

for round in $(seq "$ROUNDS"); do
    say "round $round/$ROUNDS: end to end (book, ours)"
    run book_seg_train "$PY" scripts/bench/book_seg_train.py "$CACHE" --samples "$SAMPLES" --workers 2 \
        --threads "$THREADS"
    run train_seg ours_end_to_end "$TRAIN" seg --cache "$CACHE" --epochs 1 --epoch-samples "$SAMPLES" \
        --num-workers 2 --threads "$THREADS" --device cpu --seed 1 bench
    say "round $round/$ROUNDS: step and full-slice inference (PyTorch recipes, ours)"
    run torch_seg_step "$PY" scripts/bench/torch_seg_step.py --recipes "$RECIPES" --batch-size 16 --window 64 \
        "${STEP_ARGS[@]}" --threads "$THREADS" "${INFER[@]}"
    for precision in fp32 bf16; do
        for layout in contiguous channels-last; do
            run "train_bench_step_${precision}_$layout" "$TRAIN" bench-step --model unet --batch-sizes 16 \
                --window 64 "${STEP_ARGS[@]}" --threads "$THREADS" --device cpu --precision "$precision" \
                --memory-format "$layout" "${INFER[@]}"
        done
    done
done
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.env"
"$PY" scripts/bench/render_seg.py "$RESULTS"
