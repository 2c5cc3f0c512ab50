#!/usr/bin/env bash
# Validation ROC AUC of bf16 vs fp32 training on the same data and sample
# budget, over several seeds: the accuracy table of BENCHMARKS.md.
#
#   bash scripts/bench/precision_accuracy.sh CACHE [SEEDS] [EPOCHS] [EPOCH_SAMPLES]
#
# Each run: balanced, augmented, momentum 0.9 (the demo's recipe), channels-
# last; then `train eval` on the validation split. Prints one JSON line per
# run and writes them to bench-out/results/precision_accuracy.jsonl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CACHE=${1:?usage: precision_accuracy.sh CACHE [SEEDS] [EPOCHS] [EPOCH_SAMPLES]}
SEEDS=${2:-1,2,3}
EPOCHS=${3:-3}
EPOCH_SAMPLES=${4:-4000}
PRECISIONS=${PRECISIONS:-fp32,bf16}
TRAIN=target/release/train
RUNS=bench-out/precision-runs
OUT=bench-out/results/precision_accuracy.jsonl
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
for precision in ${PRECISIONS//,/ }; do
    for seed in ${SEEDS//,/ }; do
        name="acc-$precision-s$seed"
        start=$EPOCHREALTIME
        "$TRAIN" --cache "$CACHE" --runs "$RUNS" --epochs "$EPOCHS" --balanced --augmented \
            --epoch-samples "$EPOCH_SAMPLES" --momentum 0.9 --num-workers 2 --seed "$seed" \
            --precision "$precision" --memory-format channels-last "$name" >"$RUNS.$name.log" 2>&1
        secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
        ckpt=$(ls -d "$RUNS"/p2ch12/*-cls-"$name" | sort | tail -n 1)
        "$TRAIN" eval --cache "$CACHE" --checkpoint "$ckpt" --num-workers 2 --precision "$precision" >/dev/null
        auc=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['roc_auc'])" "$ckpt/eval.json")
        line="{\"precision\": \"$precision\", \"seed\": $seed, \"samples\": $((EPOCHS * EPOCH_SAMPLES)), \"train_seconds\": $secs, \"val_roc_auc\": $auc}"
        echo "$line" | tee -a "$OUT"
    done
done
