#!/usr/bin/env bash
# What `prepcache build --shard K/N` costs (BENCHMARKS.md, "Sharded builds"):
# per round, one build, then shards 1/2 and 2/2 each timed alone (as on a
# machine of its own), the sealing build, and the seal again with every
# record's file stamp stale (as for records another machine wrote).
#   scripts/bench/shard_build.sh [DATA]   (default: make bench's 8 luna-preset scans)
set -euo pipefail
P=target/release/prepcache; D="${1:-bench-out/data-luna-8-seed1}"; O="${TMPDIR:-/tmp}/shard-bench"
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
for rep in 1 2 3; do
  rm -rf $O; mkdir -p $O
  single=$(t $P build --data $D --out $O/single --threads 2)
  s1=$(t $P build --data $D --out $O/sh --threads 2 --shard 1/2)
  s2=$(t $P build --data $D --out $O/sh --threads 2 --shard 2/2)
  seal=$(t $P build --data $D --out $O/sh --threads 2)
  rm -f $O/sh/manifest.json $O/sh/index.bin
  touch $O/sh/shards/*.zst
  seal_stale=$(t $P build --data $D --out $O/sh --threads 2)
  echo "rep $rep single $single shard1 $s1 shard2 $s2 seal $seal seal_stale $seal_stale"
done
