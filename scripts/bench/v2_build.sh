#!/usr/bin/env bash
# A prepcache build from a candidates_V2.csv of LUNA16's V2 length (754,975
# rows) over synthetic LUNA-size scans: time, candidates/s, bytes per
# candidate and peak memory. Needs ~60 GB of free disk under V2_DIR for the
# cache, which is deleted at the end (V2_KEEP=1 keeps it). Not part of
# `make bench` because of that disk; its figures are quoted in BENCHMARKS.md.
#
#   bash scripts/bench/v2_build.sh            # V2_DIR=bench-out/v2, 8 scans, 2 threads
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DIR=${V2_DIR:-bench-out/v2}
SERIES=${V2_SERIES:-8}
THREADS=${V2_THREADS:-2}
PY=${LUNA_PYTHON:-$HOME/.cache/luna-toolkit/venv/bin/python}
PREPCACHE=target/release/prepcache
[ -x "$PREPCACHE" ] || { echo "v2_build: $PREPCACHE missing: run 'make build' first" >&2; exit 1; }

rm -rf "$DIR"
mkdir -p "$DIR"
"$PREPCACHE" synth --out "$DIR/data" --series "$SERIES" --seed 1 --preset luna
"$PY" scripts/bench/candidates_v2.py "$DIR/data"
# Only the V2 list: prepcache falls back to candidates_V2.csv when candidates.csv is absent.
rm "$DIR/data/candidates.csv"
cat "$DIR"/data/subset*/*.raw >/dev/null
/usr/bin/time -v "$PREPCACHE" build --data "$DIR/data" --out "$DIR/cache" --threads "$THREADS" \
    2> >(grep -E "Elapsed|Maximum resident" >&2)
du -sh "$DIR/cache"
[ "${V2_KEEP:-0}" = 1 ] || rm -rf "$DIR/cache"
