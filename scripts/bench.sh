#!/usr/bin/env bash
# `make bench`: data-reading and prepcache benchmarks, written to BENCHMARKS.md.
#
#   bash scripts/bench.sh                  # 8 luna-preset series (~4,800 candidates)
#   BENCH_SERIES=16 bash scripts/bench.sh  # more data
#   BENCH_QUICK=1 bash scripts/bench.sh    # 2 series, fewer repeats: checks the script
#   bash scripts/bench.sh seg              # only section 7, segmentation (scripts/bench/seg.sh):
#                                          # prints its table, leaves BENCHMARKS.md alone
#   bash scripts/bench.sh analysis         # only section 8, whole-scan analysis (scripts/bench/analysis.sh)
#
# Everything runs on synthetic data under bench-out/ (gitignored). Every
# figure is taken with a warm page cache: each input file is read once before
# anything is timed. Raw results land in bench-out/results/ as JSON; the
# report is rendered by scripts/bench/render.py, which keeps BENCHMARKS.md's
# hand-written intro (everything above its marker line).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ "${1:-}" = seg ]; then
    exec bash scripts/bench/seg.sh
fi
if [ "${1:-}" = analysis ]; then
    exec bash scripts/bench/analysis.sh
fi

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    SERIES=${BENCH_SERIES:-2}
    REPEATS=1
    LOADER_BATCHES=10
    LOADER_SAMPLES=2000
    EPOCH_SAMPLES=64
else
    SERIES=${BENCH_SERIES:-8}
    REPEATS=3
    LOADER_BATCHES=60
    LOADER_SAMPLES=20000
    EPOCH_SAMPLES=1024
fi
SEED=${BENCH_SEED:-1}
PY=${LUNA_PYTHON:-$HOME/.cache/luna-toolkit/venv/bin/python}
PREPCACHE=target/release/prepcache
TRAIN=target/release/train
OUT=bench-out
DATA=$OUT/data-luna-$SERIES-seed$SEED
RESULTS=$OUT/results

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
[ -x "$PY" ] || die "Python not found at $PY (run scripts/setup.sh or set LUNA_PYTHON)"
[ -x "$PREPCACHE" ] || die "$PREPCACHE missing: run 'make build' first"

say "building the benchmark programs (shared/examples, shared/metaimage/examples)"
cargo build --release --quiet -p shared -p metaimage --examples
READ_VOLUME=target/release/examples/read_volume
CODEC_BOUND=target/release/examples/codec_bound

rm -rf "$RESULTS"
mkdir -p "$RESULTS"

# Records a step's exact command line for the report, then runs it.
# Usage: record NAME CMD... (stdout goes where the caller sends it).
record() {
    local name=$1
    shift
    printf '%q ' "$@" | sed 's/ $//' >"$RESULTS/$name.cmd"
    "$@"
}

# Wall seconds of CMD, best of REPEATS runs; BEFORE (a shell snippet) runs
# untimed before each. Usage: best_of NAME BEFORE CMD...
best_of() {
    local name=$1 before=$2 best="" t0 t1 secs
    shift 2
    printf '%q ' "$@" | sed 's/ $//' >"$RESULTS/$name.cmd"
    for _ in $(seq "$REPEATS"); do
        eval "$before"
        t0=$EPOCHREALTIME
        "$@" >"$RESULTS/$name.stdout"
        t1=$EPOCHREALTIME
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
        if [ -z "$best" ] || awk -v s="$secs" -v b="$best" 'BEGIN { exit !(s < b) }'; then
            best=$secs
        fi
    done
    echo "$best" >"$RESULTS/$name.seconds"
}

{
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "mem_kib=$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "kernel=$(uname -r)"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "series=$SERIES"
    echo "quick=$QUICK"
    echo "repeats=$REPEATS"
} >"$RESULTS/machine.env"

if [ ! -f "$DATA/candidates.csv" ]; then
    say "writing $SERIES synthetic luna-preset series to $DATA"
    record synth "$PREPCACHE" synth --out "$DATA" --series "$SERIES" --seed "$SEED" --preset luna >/dev/null
fi
shopt -s nullglob
SCANS=("$DATA"/subset*/*.mhd)
RAWS=("$DATA"/subset*/*.raw)
[ ${#SCANS[@]} -gt 0 ] || die "no scans under $DATA"

say "warming the page cache"
cat "${RAWS[@]}" "${SCANS[@]}" "$DATA"/*.csv >/dev/null

say "1/8 scan reading: read_volume vs cat, per scan"
record read_volume "$READ_VOLUME" --repeats 3 "${SCANS[@]}" >"$RESULTS/read_volume.jsonl"
# The report shows the glob, not every file name.
echo "$READ_VOLUME --repeats 3 $DATA/subset*/*.mhd" >"$RESULTS/read_volume.cmd"

say "2/8 prepcache build (levels -1 and 1, 1 and 2 threads)"
REPEATS=3 best_of read_all "" cat "${RAWS[@]}"
echo "cat $DATA/subset*/*.raw > /dev/null" >"$RESULTS/read_all.cmd"
for level in -1 1; do
    for threads in 1 2; do
        cache=$OUT/cache-l$level-t$threads
        best_of "build-l$level-t$threads" "rm -rf '$cache'" \
            "$PREPCACHE" build --data "$DATA" --out "$cache" --threads "$threads" --level="$level"
        "$PREPCACHE" info --json "$cache" >"$RESULTS/build-l$level-t$threads.manifest.json"
    done
done
record verify "$PREPCACHE" verify "$OUT/cache-l-1-t2" >/dev/null

say "    zstd alone on the same chunks (codec_bound)"
record codec_bound "$CODEC_BOUND" "$OUT/cache-l-1-t2" --levels -1,1,3 --repeats "$REPEATS" >"$RESULTS/codec_bound.json"

say "    the book's prepcache (SimpleITK, float32, pickles in diskcache, 2 workers)"
rm -rf "$OUT/book-cache"
record book_prepcache "$PY" scripts/bench/book_prepcache.py "$DATA" "$OUT/book-cache" --workers 2 >"$RESULTS/book_prepcache.json"

say "3/8 the book's loader (balanced, augmented on the CPU, batch 32, 2 workers)"
record book_loader "$PY" scripts/bench/book_loader.py "$DATA" "$OUT/book-cache" \
    --batches "$LOADER_BATCHES" --workers 2 >"$RESULTS/book_loader.json"

say "4/8 LunaModel train step and inference, CPU, 2 threads: PyTorch recipes vs train bench-step modes (slow: minutes)"
if [ "$QUICK" = 1 ]; then STEP_ARGS=(--batch-sizes 32 --warmup 1 --steps 1); RECIPES=eager,cl-bf16; else STEP_ARGS=(--batch-sizes 32 --warmup 2 --steps 8); RECIPES=eager,cl,bf16,cl-bf16,compile; fi
record torch_train_step "$PY" scripts/bench/torch_train_step.py "${STEP_ARGS[@]}" --threads 2 \
    --recipes "$RECIPES" --inference >"$RESULTS/torch_train_step.jsonl"
: >"$RESULTS/train_bench_step.jsonl"
for precision in fp32 bf16; do
    for layout in contiguous channels-last; do
        record "train_bench_step_${precision}_$layout" "$TRAIN" bench-step "${STEP_ARGS[@]}" --threads 2 \
            --device cpu --precision "$precision" --memory-format "$layout" --inference \
            >>"$RESULTS/train_bench_step.jsonl"
    done
done

say "5/8 Rust loader (train bench-loader, balanced like the book loader)"
record train_bench_loader "$TRAIN" bench-loader --cache "$OUT/cache-l-1-t2" --num-workers 2 --batch-size 32 \
    --balanced --samples "$LOADER_SAMPLES" --device cpu --json >"$RESULTS/train_bench_loader.json"

say "6/8 one training epoch end to end, CPU, 2 threads, 2 workers: the book's loop vs train (slow: minutes)"
record book_train_epoch "$PY" scripts/bench/book_train_epoch.py "$DATA" "$OUT/book-cache" \
    --samples "$EPOCH_SAMPLES" --workers 2 --threads 2 >"$RESULTS/book_train_epoch.json"
rm -rf "$OUT/runs"
record train_epoch "$TRAIN" --cache "$OUT/cache-l-1-t2" --runs "$OUT/runs" --epochs 1 \
    --epoch-samples "$EPOCH_SAMPLES" --val-samples 64 --balanced --augmented --momentum 0.99 \
    --num-workers 2 --threads 2 --device cpu --seed 1 --profile bench >"$RESULTS/train_epoch.stdout"

say "7/8 segmentation (chapter 13): the book's training app vs train seg, U-Net step and full-slice inference vs PyTorch (slow: minutes)"
BENCH_OUT=$OUT bash scripts/bench/seg.sh >/dev/null

say "8/8 whole-scan analysis (chapter 14): the book's nodule_analysis.py path vs train analyze on a LUNA-size scan (slow: minutes)"
BENCH_OUT=$OUT bash scripts/bench/analysis.sh >/dev/null

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.env"
"$PY" scripts/bench/render.py "$RESULTS" BENCHMARKS.md
say "wrote BENCHMARKS.md"
