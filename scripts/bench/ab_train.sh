#!/usr/bin/env bash
# A/B of two `train` binaries on the same cache and run, interleaved so that
# machine noise falls on both alike: median training samples/s and median
# augmentation seconds (from --profile) per binary.
#
#   scripts/bench/ab_train.sh OLD_TRAIN NEW_TRAIN CACHE [REPS] [-- extra train flags]
#
# Used to check that a change keeps the augmentation and sampler paths
# within 5% of the previous commit (build the old one with
# `git worktree add /tmp/old <commit>` and CARGO_TARGET_DIR=/tmp/old-target).
set -euo pipefail
old=$1 new=$2 cache=$3 reps=${4:-3}
shift $(( $# >= 4 ? 4 : 3 ))
[ "${1:-}" = "--" ] && shift
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
declare -A rate aug
for i in $(seq "$reps"); do
  for who in old new; do
    bin=${!who}
    out=$("$bin" --cache "$cache" --runs "$runs/$who$i" --device cpu --epochs 1 \
      --balanced=1 --augmented --epoch-samples 1024 --val-samples 64 --seed 3 \
      --profile "$@" ab 2>&1 | grep '^E1 trn')
    rate[$who]+="$(sed -n 's/.*(\([0-9.]*\) samples\/s.*/\1/p' <<<"$out") "
    aug[$who]+="$(sed -n 's/.*augment \([0-9.]*\)s.*/\1/p' <<<"$out") "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for who in old new; do
  echo "$who: train $(median <<<"${rate[$who]}") samples/s (runs: ${rate[$who]}), augment $(median <<<"${aug[$who]}") s (runs: ${aug[$who]})"
done
