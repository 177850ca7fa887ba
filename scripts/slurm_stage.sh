#!/usr/bin/env bash
# Run one stage of a recipe on N nodes through accelerate (one task per node, 8 GPUs each).
#   sbatch --nodes=2 scripts/slurm_stage.sh recipes/distill-qwen2.5-math-1.5b-openr1.yaml distill recipes/accelerate/zero3.yaml
# The runner skips cached stages, so run the stages before this one first (or with --only as here, their DONE must
# exist). Every node runs `reasonforge run --only STAGE` with launch: fields set from Slurm's environment; rank 0
# writes the artifacts, the ledger row and DONE on the shared filesystem.
#SBATCH --job-name=reasonforge
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
RECIPE=${1:?recipe}; STAGE=${2:?stage}; ACCEL_CONFIG=${3:-recipes/accelerate/zero3.yaml}; shift 3 || true
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NNODES=${SLURM_NNODES:-1}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
mkdir -p logs
srun --kill-on-bad-exit=1 bash -c "
  source .venv/bin/activate
  reasonforge run '$RECIPE' --only '$STAGE' \
    stages.$STAGE.launch.config='$ACCEL_CONFIG' \
    stages.$STAGE.launch.num_processes=$((NNODES * GPUS_PER_NODE)) \
    stages.$STAGE.launch.num_machines=$NNODES \
    stages.$STAGE.launch.machine_rank=\$SLURM_NODEID \
    stages.$STAGE.launch.main_process_ip=$MASTER_ADDR \
    stages.$STAGE.launch.main_process_port=$MASTER_PORT $*
"
