#!/usr/bin/env bash
#SBATCH --job-name=prepcache
#SBATCH --cpus-per-task=16
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=prepcache-%A_%a.out
#
# Build a prepcache cache with a Slurm job array: each of N array tasks
# builds its share of the scans (`prepcache build --shard K/N`) into one
# folder on a shared file system, then one dependent job seals the cache
# (a plain `prepcache build` with the same arguments), byte-identical to a
# build on one machine.
#
# From a login node, in the repository (after `make build`):
#
#   examples/slurm/prepcache_array.sh submit N DATA OUT [prepcache build options…]
#
# which runs
#
#   sbatch --array=0-(N-1) prepcache_array.sh shard DATA OUT …    (task i: --shard i+1/N)
#   sbatch --dependency=afterany:ARRAY prepcache_array.sh seal DATA OUT …
#
# The sealing job waits for every task however it ended (afterany, not
# afterok): a task that failed or hit its time limit leaves its finished
# scans in OUT, and the sealing build builds the rest itself. Resubmitting
# the whole thing resumes: every scan already built is reused.
#
# COMMAND=seg builds chapter 13's segmentation cache (`prepcache seg`) the
# same way. DATA and OUT must be the same paths on every node (submit
# makes them absolute). Set PREPCACHE to use
# another binary (default: target/release/prepcache under the directory
# you submit from); add --time, --partition, --account… to the #SBATCH lines
# above or to SBATCH_* variables as your site wants. At its time limit Slurm
# sends SIGTERM: prepcache finishes the scans in progress and exits, and
# they are kept.
set -euo pipefail

usage() {
    sed -n '/^# From a login node/,/^#   sbatch --dependency/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

stage="${1:-}"
case "$stage" in
    submit)
        [[ $# -ge 4 ]] || usage
        count="$2"
        shift 2
        [[ "$count" =~ ^[1-9][0-9]*$ ]] || { echo "prepcache_array.sh: N must be a positive integer, not '$count'" >&2; exit 2; }
        PREPCACHE="$(realpath "${PREPCACHE:-target/release/prepcache}")"
        [[ -x "$PREPCACHE" ]] || { echo "prepcache_array.sh: $PREPCACHE: no such program (run make build, or set PREPCACHE)" >&2; exit 2; }
        export PREPCACHE
        data="$(realpath -m "$1")" out="$(realpath -m "$2")"
        shift 2
        array=$(sbatch --parsable --array="0-$((count - 1))" "$0" shard "$data" "$out" "$@")
        array="${array%%;*}"
        seal=$(sbatch --parsable --job-name=prepcache-seal --dependency="afterany:$array" \
            "$0" seal "$data" "$out" "$@")
        echo "submitted array job $array ($count shards) and sealing job ${seal%%;*}"
        ;;
    shard | seal)
        [[ $# -ge 3 ]] || usage
        data="$2" out="$3"
        shift 3
        bin="${PREPCACHE:-${SLURM_SUBMIT_DIR:-$PWD}/target/release/prepcache}"
        args=("${COMMAND:-build}" --data "$data" --out "$out" --threads "${SLURM_CPUS_PER_TASK:-$(nproc)}")
        if [[ "$stage" == shard ]]; then
            : "${SLURM_ARRAY_TASK_ID:?not inside a job array (use: $0 submit N DATA OUT)}"
            : "${SLURM_ARRAY_TASK_COUNT:?not inside a job array}"
            args+=(--shard "$((SLURM_ARRAY_TASK_ID + 1))/$SLURM_ARRAY_TASK_COUNT")
        fi
        exec "$bin" "${args[@]}" "$@"
        ;;
    *) usage ;;
esac
