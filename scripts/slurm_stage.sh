#!/usr/bin/env bash
# Run one stage of a recipe on N nodes through accelerate (one Slurm task per node, GPUS_PER_NODE GPUs each):
#   sbatch --nodes=2 scripts/slurm_stage.sh RECIPE STAGE [ACCELERATE_CONFIG] [key=value ...]
#   sbatch --nodes=2 scripts/slurm_stage.sh recipes/distill-qwen2.5-math-1.5b-openr1.yaml distill
# Every node runs `reasonforge run RECIPE --only STAGE` with the stage's launch: fields set from Slurm's allocation:
# num_machines = nodes, machine_rank = the node's task rank (SLURM_PROCID: one task per node, node 0 first),
# main_process_ip = the first node. Node 0 prepares the stage directory, its rank 0 writes artifacts, the ledger row
# and DONE; the other nodes leave the stage directory alone and wait for DONE. The run directory must be on a
# filesystem every node sees. --only needs the stages before STAGE finished (run them first, e.g. on one node).
#SBATCH --job-name=reasonforge
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
USAGE="usage: sbatch --nodes=N scripts/slurm_stage.sh RECIPE STAGE [ACCELERATE_CONFIG] [key=value ...]"
export RF_RECIPE=${1:?$USAGE} RF_STAGE=${2:?$USAGE} RF_CONFIG=${3:-recipes/accelerate/zero3.yaml}
shift $(( $# < 3 ? $# : 3 ))  # what is left are extra overrides
export RF_PROCESSES=$(( ${SLURM_NNODES:-1} * ${GPUS_PER_NODE:-8} )) RF_NODES=${SLURM_NNODES:-1}
export RF_MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) RF_PORT=${MASTER_PORT:-29500}
export RF_VENV=${VENV:-.venv}
mkdir -p logs
# Overrides go before --only: argparse reads the positional overrides only up to the first option.
srun --kill-on-bad-exit=1 bash -c '
  if [ -f "$RF_VENV/bin/activate" ]; then source "$RF_VENV/bin/activate"; fi
  exec reasonforge run "$RF_RECIPE" \
    "stages.$RF_STAGE.launch.config=$RF_CONFIG" \
    "stages.$RF_STAGE.launch.num_processes=$RF_PROCESSES" \
    "stages.$RF_STAGE.launch.num_machines=$RF_NODES" \
    "stages.$RF_STAGE.launch.machine_rank=$SLURM_PROCID" \
    "stages.$RF_STAGE.launch.main_process_ip=$RF_MASTER" \
    "stages.$RF_STAGE.launch.main_process_port=$RF_PORT" \
    "$@" --only "$RF_STAGE"' slurm_stage "$@"
