#!/usr/bin/env bash
# Whole-scan analysis speed (chapter 14): `train analyze` against the book's
# p2ch14/nodule_analysis.py path (scripts/bench/book_analysis.py) on the
# same LUNA-size synthetic scan (512x512x~250, the luna preset) with the
# same weights, on the CPU, in one sitting, rounds interleaved.
#
#   bash scripts/bench/analysis.sh                 # 2 rounds, 2 threads
#   ANALYSIS_ROUNDS=3 bash scripts/bench/analysis.sh
#   BENCH_QUICK=1 bash scripts/bench/analysis.sh   # a tiny scan: checks the script
#
# Weights: the book's published seg_*.state and cls_*.state when
# BOOK_MODELS (default ../shared/book-data/models) holds them, else
# book-shaped ones made here (the times barely depend on the values; the
# candidate count does, and is reported). Ours runs its default compute
# (bf16 + channels-last where the CPU has them) and fp32; the book fp32.
# Results: bench-out/results/analysis/*.jsonl and a table on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
THREADS=${ANALYSIS_THREADS:-2}
ROUNDS=${ANALYSIS_ROUNDS:-2}
PY=${LUNA_PYTHON:-$HOME/.cache/luna-toolkit/venv/bin/python}
PREPCACHE=${PREPCACHE:-target/release/prepcache}
TRAIN=${TRAIN:-target/release/train}
OUT=${BENCH_OUT:-bench-out}
RESULTS=$OUT/results/analysis
BOOK_MODELS=${BOOK_MODELS:-$ROOT/../shared/book-data/models}
if [ "$QUICK" = 1 ]; then PRESET=tiny; ROUNDS=1; else PRESET=luna; fi
DATA=$OUT/analysis-$PRESET-seed5

say() { echo "bench analysis: $*" >&2; }
[ -x "$PY" ] || { say "Python not found at $PY (scripts/setup.sh, or set LUNA_PYTHON)"; exit 1; }
[ -x "$TRAIN" ] && [ -x "$PREPCACHE" ] || { say "build first: cargo build --release -p train -p prepcache --bins"; exit 1; }

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
[ -f "$DATA/candidates.csv" ] || "$PREPCACHE" synth --out "$DATA" --series 1 --seed 5 --preset "$PRESET" >/dev/null
SCAN=$(ls "$DATA"/subset0/*.mhd | head -n 1)

SEG=$(ls "$BOOK_MODELS"/seg_*.state 2>/dev/null | head -n 1 || true)
CLS=$(ls "$BOOK_MODELS"/cls_*.state 2>/dev/null | head -n 1 || true)
WEIGHTS="the book's published"
if [ -z "$SEG" ] || [ -z "$CLS" ]; then
    WEIGHTS="book-shaped, made here"
    SEG=$RESULTS/seg.state CLS=$RESULTS/cls.state
    PYTHONPATH=scripts "$PY" - "$SEG" "$CLS" <<'EOF'
import sys, torch
from luna_model import LunaModel
from unet_model import UNetWrapper
torch.manual_seed(5)
seg = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True, batch_norm=True, up_mode="upconv")
cls = LunaModel()
for bn in (seg.input_batchnorm, cls.tail_batchnorm):  # HU-scale running statistics
    bn.running_mean.fill_(-500.0); bn.running_var.fill_(250000.0)
torch.save({"model_state": seg.state_dict()}, sys.argv[1], _use_new_zipfile_serialization=False)
torch.save({"model_state": cls.state_dict()}, sys.argv[2], _use_new_zipfile_serialization=False)
EOF
fi
{
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "nproc=$(nproc)"
    echo "threads=$THREADS"
    echo "rounds=$ROUNDS"
    echo "scan=$SCAN"
    echo "weights=$WEIGHTS"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$RESULTS/machine.env"

ours() { # precision
    local dir=$RESULTS/ours-$1
    rm -rf "$dir"
    "$TRAIN" analyze --scan "$SCAN" --seg-model "$SEG" --cls-model "$CLS" --out "$dir" \
        --device cpu --threads "$THREADS" --precision "$1" >/dev/null
    "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); s=r["scans"][0]; t=s["seconds"]; t["total"]=sum(t.values()); print(json.dumps(dict(tool="ours-"+sys.argv[2], seconds=t, shape=s["shape"], candidates=s["candidates"], nodules=len(s["nodules"]), compute=r["compute"])))' \
        "$dir/report.json" "$1"
}

for round in $(seq 1 "$ROUNDS"); do
    say "round $round/$ROUNDS: book"
    "$PY" scripts/bench/book_analysis.py "$SCAN" "$SEG" "$CLS" --threads "$THREADS" --num-workers 4 >>"$RESULTS/book.jsonl"
    say "round $round/$ROUNDS: ours (default compute)"
    ours auto >>"$RESULTS/ours-auto.jsonl"
    say "round $round/$ROUNDS: ours (fp32)"
    ours fp32 >>"$RESULTS/ours-fp32.jsonl"
done
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.env"

"$PY" scripts/bench/render_analysis.py "$RESULTS"
