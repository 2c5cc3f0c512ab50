#!/usr/bin/env bash
# One command for a machine with one CUDA GPU and torch 2.11 installed, but no
# cargo and no network: given the release binaries and a small cache, it runs
# doctor, torch-ext's tests (when the pack has them), the loader bench (pinned memory), bench-step for fp32/bf16/fp16 ×
# contiguous/channels-last, a short training run whose loss must fall, eval,
# and the same step in PyTorch on the same device; then the same for the
# chapter 13 U-Net: its training step and full-slice (512×512) inference,
# tch vs PyTorch, and a short `train seg` whose loss must fall; then
# `train analyze` of a LUNA-size scan with those two runs (chapter 14).
# Everything goes to one Markdown file ready for BENCHMARKS.md. About 9
# minutes on a GPU.
#
#   scripts/gpu_check.sh [--device cuda|cpu] [--cache DIR] [--bin DIR]
#                        [--python PY] [--out FILE] [--quick]
#
#   --device   cuda (default) or cpu: on the CPU the same checks run (fp16
#              is skipped: it is CUDA-only), which is how `make test` checks
#              this script
#   --cache    a cache written by `prepcache build` [gpu-pack/cache]
#   --seg-cache  a cache written by `prepcache seg` [gpu-pack/seg-cache];
#              without one, `train seg` is skipped (the step checks need none)
#   --bin      folder holding `train` [target/release]
#   --python   Python with torch 2.11 [$LUNA_PYTHON, else /opt/torch/.venv/bin/python]
#   --out      results file [gpu_check_results.md]
#   --quick    fewer steps and samples (for the CPU test)
#
# Preparing the pack on the build machine (at most 64 MiB with the binaries):
#   make gpu-pack    (stripped train and prepcache in gpu-pack/bin, 6-scan caches)
# Exit status: 0 when every check passed, 1 otherwise (each failure is named
# in the results file and on stderr).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DEVICE=cuda
CACHE=gpu-pack/cache
SEG_CACHE=gpu-pack/seg-cache
BIN=target/release
PY=${LUNA_PYTHON:-/opt/torch/.venv/bin/python}
OUT=gpu_check_results.md
QUICK=0
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --seg-cache) SEG_CACHE=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --python) PY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | cut -c3-; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $DEVICE in cuda|cpu) ;; *) echo "gpu_check: --device must be cuda or cpu, got $DEVICE" >&2; exit 2 ;; esac
TRAIN=$BIN/train
[ -x "$TRAIN" ] || { echo "gpu_check: $TRAIN not found (--bin)" >&2; exit 2; }
[ -f "$CACHE/manifest.json" ] || { echo "gpu_check: $CACHE is not a cache (no manifest.json; --cache)" >&2; exit 2; }
[ -x "$PY" ] || { echo "gpu_check: no Python at $PY (--python or LUNA_PYTHON)" >&2; exit 2; }

# The binaries' rpath names the build machine's torch; use this machine's.
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') \
    || { echo "gpu_check: $PY cannot import torch" >&2; exit 2; }
export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

if [ "$QUICK" = 1 ]; then
    BATCHES=8; STEPS=2; WARMUP=1; LOADER_SAMPLES=512; EPOCH_SAMPLES=256; VAL_SAMPLES=128; PT_BATCHES=8
    SEG_SIZE=128; SEG_INFER_BATCH=2; SEG_EPOCH_SAMPLES=128
else
    BATCHES=32,128; STEPS=20; WARMUP=3; LOADER_SAMPLES=20000; EPOCH_SAMPLES=4000; VAL_SAMPLES=2000; PT_BATCHES=32,128
    SEG_SIZE=512; SEG_INFER_BATCH=16; SEG_EPOCH_SAMPLES=4000
fi
PRECISIONS="fp32 bf16 fp16"
[ "$DEVICE" = cpu ] && PRECISIONS="fp32 bf16"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=()
RAW=$WORK/raw.jsonl
SEG_RAW=$WORK/seg_raw.jsonl
: >"$RAW"
: >"$SEG_RAW"

{
    echo "# gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Device \`$DEVICE\`, cache \`$CACHE\`, binaries \`$BIN\`, Python \`$PY\`."
    echo
} >"$OUT"

# Runs CMD under a time limit, appends its command line and output to the
# results, and records a failure by NAME. Usage: check NAME LIMIT_S CMD...
check() {
    local name=$1 limit=$2 rc
    shift 2
    echo "gpu_check: $name" >&2
    {
        echo "### $name"
        echo
        echo '```text'
        echo "\$ $*"
    } >>"$OUT"
    timeout "$limit" "$@" >"$WORK/out" 2>&1
    rc=$?
    tail -n 60 "$WORK/out" >>"$OUT"
    echo '```' >>"$OUT"
    if [ $rc -ne 0 ]; then
        FAILED+=("$name (exit $rc)")
        echo "**FAILED** (exit $rc)" >>"$OUT"
        echo "gpu_check: $name FAILED (exit $rc)" >&2
    fi
    echo >>"$OUT"
    return $rc
}

echo "## Environment" >>"$OUT"
check "doctor" 60 "$TRAIN" doctor
[ "$DEVICE" = cuda ] && check "nvidia-smi" 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

# torch-ext's own tests (CUDA events, the side-stream copy, pinning, the
# fused unscale and optimizer steps): built by `make gpu-pack`; each runs its
# GPU half where it sees a device.
if [ -d "$BIN/tests" ]; then
    echo "## torch-ext tests" >>"$OUT"
    for t in "$BIN"/tests/*; do
        [ -x "$t" ] && check "torch-ext $(basename "$t")" 120 "$t" --test-threads 1
    done
fi

echo "## Loader (pinned host memory on CUDA)" >>"$OUT"
if check "bench-loader" 120 "$TRAIN" bench-loader --cache "$CACHE" --device "$DEVICE" --num-workers 2 --balanced \
    --samples "$LOADER_SAMPLES"; then
    # Pinning through tch's pin_memory(device) made libtorch 2.11 warn once per loader.
    if grep -qi 'deprecat' "$WORK/out"; then
        FAILED+=("bench-loader printed a deprecation warning")
        echo "**FAILED**: a deprecation warning (pin_memory with a device?)" >>"$OUT"
    fi
fi

echo "## Train step (tch)" >>"$OUT"
for p in $PRECISIONS; do
    for m in contiguous channels-last; do
        if check "bench-step $p $m" 120 "$TRAIN" bench-step --device "$DEVICE" --precision "$p" --memory-format "$m" \
            --batch-sizes "$BATCHES" --steps "$STEPS" --warmup "$WARMUP" --inference; then
            grep '^{' "$WORK/out" | sed "s/^{/{\"who\":\"tch\",\"recipe\":\"$p $m\",/" >>"$RAW"
        fi
    done
done

echo "## Train step (PyTorch, same device)" >>"$OUT"
RECIPES=eager,cl,bf16,cl-bf16,fp16,cl-fp16
[ "$DEVICE" = cpu ] && RECIPES=eager,cl,bf16,cl-bf16
if check "pytorch step" 300 "$PY" scripts/bench/torch_train_step.py --device "$DEVICE" --recipes "$RECIPES" \
    --batch-sizes "$PT_BATCHES" --steps "$STEPS" --warmup "$WARMUP" --inference; then
    grep '^{' "$WORK/out" | grep -v skipped | sed 's/^{/{"who":"pytorch",/' >>"$RAW"
fi

# Whether the training loss of RUN_DIR's metrics.jsonl fell from the first
# epoch to the last; a failure is recorded by NAME. Usage: loss_fell RUN_DIR NAME
loss_fell() {
    if "$PY" - "$1/metrics.jsonl" >>"$OUT" <<'PY'
import json, sys
trn = [r for r in map(json.loads, open(sys.argv[1])) if r["phase"] == "trn"]
first, last = trn[0]["loss_all"], trn[-1]["loss_all"]
losses = ", ".join("%.4f" % r["loss_all"] for r in trn)
print("Training loss per epoch: " + losses + " -> " + ("fell." if last < first else "did NOT fall."))
print()
sys.exit(0 if last < first else 1)
PY
    then :; else FAILED+=("$2: training loss did not fall"); fi
}

# The run folder the last check's `train` named on its last line (a glob
# would also match the run's TensorBoard folders next to it).
last_run_dir() {
    sed -n 's/^train: done; checkpoint and metrics in //p' "$WORK/out" | tail -n 1
}

echo "## Training (loss must fall) and eval" >>"$OUT"
RUNS=$WORK/runs
if check "train" 300 "$TRAIN" --cache "$CACHE" --runs "$RUNS" --device "$DEVICE" --epochs 2 --balanced --augmented \
    --epoch-samples "$EPOCH_SAMPLES" --val-samples "$VAL_SAMPLES" --momentum 0.9 --seed 1 --profile gpucheck; then
    RUN_DIR=$(last_run_dir)
    loss_fell "$RUN_DIR" train
    check "eval" 120 "$TRAIN" eval --cache "$CACHE" --checkpoint "$RUN_DIR" --device "$DEVICE"
fi

echo "## Segmentation: U-Net step and full-slice inference (tch)" >>"$OUT"
for p in $PRECISIONS; do
    for m in contiguous channels-last; do
        if check "seg bench-step $p $m" 180 "$TRAIN" bench-step --model unet --device "$DEVICE" --precision "$p" \
            --memory-format "$m" --batch-sizes 16 --window 64 --steps "$STEPS" --warmup "$WARMUP" --inference \
            --size "$SEG_SIZE" --infer-batch "$SEG_INFER_BATCH"; then
            grep '^{' "$WORK/out" | sed "s/^{/{\"who\":\"tch\",\"recipe\":\"$p $m\",/" >>"$SEG_RAW"
        fi
    done
done

echo "## Segmentation (PyTorch, same device)" >>"$OUT"
SEG_RECIPES=eager,cl,bf16,cl-bf16,fp16
[ "$DEVICE" = cpu ] && SEG_RECIPES=eager,cl,bf16,cl-bf16
if check "pytorch seg step" 300 "$PY" scripts/bench/torch_seg_step.py --device "$DEVICE" --recipes "$SEG_RECIPES" \
    --batch-size 16 --window 64 --steps "$STEPS" --warmup "$WARMUP" --inference --size "$SEG_SIZE" \
    --infer-batch "$SEG_INFER_BATCH"; then
    grep '^{' "$WORK/out" | grep -v skipped | sed 's/^{/{"who":"pytorch",/' >>"$SEG_RAW"
fi

echo "## Segmentation training (loss must fall)" >>"$OUT"
if [ -f "$SEG_CACHE/seg-train/manifest.json" ]; then
    if check "train seg" 300 "$TRAIN" seg --cache "$SEG_CACHE" --runs "$RUNS" --device "$DEVICE" --epochs 2 \
        --epoch-samples "$SEG_EPOCH_SAMPLES" --seed 1 --profile gpucheck; then
        SEG_RUN=$(last_run_dir)
        loss_fell "$SEG_RUN" "train seg"
    fi
else
    echo "Skipped: no segmentation cache at \`$SEG_CACHE\` (--seg-cache; \`make gpu-pack\` writes one)." >>"$OUT"
    echo >>"$OUT"
fi

echo "## Whole-scan analysis (chapter 14)" >>"$OUT"
# The two runs above as the models (times depend on the weights only through
# the candidate count, which is reported), on a LUNA-size synthetic scan
# written here (a tiny one with --quick); twice, the first pays start-up.
if [ -x "$BIN/prepcache" ] && [ -n "${RUN_DIR:-}" ] && [ -n "${SEG_RUN:-}" ]; then
    PRESET=luna
    [ "$QUICK" = 1 ] && PRESET=tiny
    if check "synth scan" 180 "$BIN/prepcache" synth --out "$WORK/scan" --series 1 --seed 5 --preset "$PRESET"; then
        SCAN=$(ls "$WORK"/scan/subset*/*.mhd | head -n 1)
        for round in 1 2; do
            if check "analyze $round" 300 "$TRAIN" analyze --scan "$SCAN" --seg-model "$SEG_RUN" \
                --cls-model "$RUN_DIR" --out "$WORK/analysis$round" --device "$DEVICE"; then
                "$PY" - "$WORK/analysis$round/report.json" >>"$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["scans"][0]
t = s["seconds"]
print(f"Scan {'x'.join(map(str, s['shape']))} ({r['compute']}): {sum(t.values()):.2f} s in all "
      + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()) + f"; {s['candidates']} candidates.")
print()
PY
            fi
        done
    fi
else
    echo "Skipped: needs \`prepcache\` beside \`train\` (\`make gpu-pack\` puts it there) and both training runs above." >>"$OUT"
    echo >>"$OUT"
fi

echo "## Summary" >>"$OUT"
"$PY" - "$RAW" >>"$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    print("No step figures were measured.")
    sys.exit(0)
device = next((r["device"] for r in rows if r["who"] == "pytorch"), rows[0].get("device"))
print(f"Samples/s on {device} (tch: `train bench-step`; PyTorch: `scripts/bench/torch_train_step.py`).")
print()
print("| who | recipe | batch | train samples/s | inference samples/s |")
print("|---|---|---:|---:|---:|")
table = {}
for r in rows:
    table.setdefault((r["who"], r["recipe"], r["batch_size"]), {})[r["mode"]] = r["samples_per_s"]
for (who, recipe, batch), v in table.items():
    fmt = lambda k: f"{v[k]:.1f}" if k in v else "–"
    print(f"| {who} | {recipe} | {batch} | {fmt('train')} | {fmt('inference')} |")
for batch in sorted({b for (_, _, b) in table}):
    best = lambda who: max(((v.get("train", 0), rec) for (w, rec, b), v in table.items() if w == who and b == batch), default=(0, "-"))
    (t, tr), (p, pr) = best("tch"), best("pytorch")
    if t and p:
        print(f"\nBatch {batch}: best tch {t:.1f} samples/s ({tr}) vs best PyTorch {p:.1f} ({pr}): "
              f"PyTorch's step time is {t / p:.2f}x ours.")
PY
echo >>"$OUT"
"$PY" - "$SEG_RAW" "$SEG_SIZE" >>"$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    print("No segmentation figures were measured.")
    sys.exit(0)
size = sys.argv[2]
print(f"U-Net (tch: `train bench-step --model unet`; PyTorch: `scripts/bench/torch_seg_step.py`): "
      f"train samples/s at batch 16 of 64x64 windows, inference slices/s of {size}x{size} slices.")
print()
print("| who | recipe | train samples/s | inference slices/s |")
print("|---|---|---:|---:|")
table = {}
for r in rows:
    table.setdefault((r["who"], r["recipe"]), {})[r["mode"]] = r["samples_per_s"]
for (who, recipe), v in table.items():
    fmt = lambda k: f"{v[k]:.1f}" if k in v else "-"
    print(f"| {who} | {recipe} | {fmt('train')} | {fmt('inference')} |")
for mode in ("train", "inference"):
    best = lambda who: max(((v.get(mode, 0), rec) for (w, rec), v in table.items() if w == who), default=(0, "-"))
    (t, tr), (p, pr) = best("tch"), best("pytorch")
    if t and p:
        print(f"\nU-Net {mode}: best tch {t:.1f}/s ({tr}) vs best PyTorch {p:.1f}/s ({pr}): {t / p:.2f}x.")
PY
echo >>"$OUT"
if [ ${#FAILED[@]} -eq 0 ]; then
    echo "All checks passed." >>"$OUT"
    echo "gpu_check: all checks passed; results in $OUT" >&2
else
    printf 'Failed: %s\n' "${FAILED[@]}" >>"$OUT"
    echo "gpu_check: ${#FAILED[@]} check(s) failed; results in $OUT" >&2
    exit 1
fi
