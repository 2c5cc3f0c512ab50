#!/usr/bin/env bash
# Shows that two builds of the tools behave the same: run on the same inputs,
# they must write byte-identical synthetic data and caches, and a seeded CPU
# training run must write the same metrics.jsonl (its records hold no timing).
#
#   scripts/compare_behaviour.sh OLD_BIN_DIR NEW_BIN_DIR [WORK_DIR]
#
# Each BIN_DIR holds a `prepcache` and a `train` binary (e.g. target/release
# of two checkouts). Prints one line per comparison and exits non-zero on the
# first difference.
set -euo pipefail

old="${1:?usage: $0 OLD_BIN_DIR NEW_BIN_DIR [WORK_DIR]}"
new="${2:?usage: $0 OLD_BIN_DIR NEW_BIN_DIR [WORK_DIR]}"
work="${3:-$(mktemp -d)}"
mkdir -p "$work"
say() { printf 'compare: %s\n' "$*"; }

same_tree() {
    # Every file's path and bytes; a differing file is named. Further
    # arguments are names to leave out (diff -x).
    local a="$1" b="$2" what="$3"
    shift 3
    local skip=()
    for name in "$@"; do skip+=(-x "$name"); done
    if diff -r "${skip[@]}" "$a" "$b" >/dev/null; then
        say "identical: $what"
    else
        diff -rq "${skip[@]}" "$a" "$b" | head -5 >&2
        say "DIFFERENT: $what"
        exit 1
    fi
}

for side in old new; do
    bin="${!side}"
    rm -rf "${work:?}/$side"
    mkdir -p "$work/$side"
    "$bin/prepcache" synth --out "$work/$side/data" --series 6 --seed 11 >/dev/null
done
# Both caches from the same files: the cache's input fingerprint covers the
# scans' mtimes, which differ between two synth runs.
for side in old new; do
    bin="${!side}"
    "$bin/prepcache" build --data "$work/old/data" --out "$work/$side/cache" --threads 2 >/dev/null
    "$bin/train" --cache "$work/$side/cache" --runs "$work/$side/runs" --device cpu --threads 2 \
        --epochs 2 --epoch-samples 96 --val-samples 64 --batch-size 16 --num-workers 2 \
        --balanced --augmented --momentum 0.9 --seed 5 compare >"$work/$side/train.log" 2>&1
done
same_tree "$work/old/data" "$work/new/data" "synthetic data (prepcache synth --series 6 --seed 11)"
# A resume record keeps its shard's file-system stamp (inode, change time),
# which differs between any two builds: compared without it.
for side in old new; do
    python3 - "$work/$side/cache/shards" <<'PY'
import json, pathlib, sys
for record in pathlib.Path(sys.argv[1]).glob("*.json"):
    doc = json.loads(record.read_text())
    built = doc.get("outcome", {}).get("built")
    if isinstance(built, dict) and built.pop("stamp", None) is not None:
        record.write_text(json.dumps(doc, sort_keys=True))
PY
done
# skipped.csv is left out: builds before it existed do not write it, and
# it is a report for people (CSV rows not cached), not cache content; so is
# .lock, which holds the PID of the build that last wrote the cache.
same_tree "$work/old/cache" "$work/new/cache" "cache (prepcache build; skipped.csv, .lock and the resume records' stamps not compared)" skipped.csv .lock
old_metrics=$(ls "$work"/old/runs/p2ch12/*-cls-compare/metrics.jsonl)
new_metrics=$(ls "$work"/new/runs/p2ch12/*-cls-compare/metrics.jsonl)
if cmp -s "$old_metrics" "$new_metrics"; then
    say "identical: metrics.jsonl of a seeded 2-epoch balanced, augmented CPU run ($(wc -l <"$new_metrics") records)"
else
    diff <(tr ',' '\n' <"$old_metrics") <(tr ',' '\n' <"$new_metrics") | head -10 >&2
    say "DIFFERENT: metrics.jsonl"
    exit 1
fi
say "work folder: $work"
