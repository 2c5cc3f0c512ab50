#!/usr/bin/env bash
#SBATCH --job-name=luna-ddp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=08:00:00
#SBATCH --output=luna-ddp-%j.out
#
# Multi-node training with DistributedDataParallel (scripts/torch_ddp_train.py):
# srun starts one torchrun per node, and the torchruns meet at a c10d
# rendezvous on the job's first node; each starts one rank per GPU (nccl),
# or NPROC_PER_NODE CPU ranks (gloo) on nodes without one. Every rank reads
# its own shard of the cache, which must be on a shared file system (build
# it with prepcache_array.sh); rank 0 writes OUT/model.safetensors.
#
# From a login node, in the repository (after `make build`):
#
#   sbatch examples/slurm/torch_ddp.sh --cache CACHE --steps K --out runs/ddp [options…]
#
# The options are torch_ddp_train.py's (see its --help). The venv is
# scripts/setup.sh's (TORCH_VENV to use another); MASTER_PORT picks the
# rendezvous port (default 29500).
set -euo pipefail

: "${SLURM_JOB_NODELIST:?not inside a Slurm job (use: sbatch $0 --cache CACHE --steps K --out DIR)}"
root="${SLURM_SUBMIT_DIR:-$PWD}"
venv="${TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/luna-toolkit/venv}"
head_node="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
ranks_per_node="${NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}"

srun --kill-on-bad-exit=1 "$venv/bin/python" -m torch.distributed.run \
    --nnodes "${SLURM_NNODES:-1}" --nproc_per_node "$ranks_per_node" \
    --rdzv_id "${SLURM_JOB_ID:-0}" --rdzv_backend c10d \
    --rdzv_endpoint "$head_node:${MASTER_PORT:-29500}" \
    "$root/scripts/torch_ddp_train.py" "$@"
