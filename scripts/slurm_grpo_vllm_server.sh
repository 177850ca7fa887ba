#!/usr/bin/env bash
# GRPO with a dedicated vLLM generation server (TRL's "server" mode): node 0 serves the policy with
# `trl vllm-serve`, the other nodes train and send generation requests to it.
#   sbatch --nodes=3 scripts/slurm_grpo_vllm_server.sh recipes/grpo-qwen2.5-1.5b-math.yaml rl Qwen/Qwen2.5-1.5B
# The recipe's grpo stage must set trainer: {use_vllm: true, vllm_mode: server}; the server address is passed
# here as trainer.vllm_server_base_url. For a single node, prefer vllm_mode: colocate (no server; see the recipe).
#SBATCH --job-name=reasonforge-grpo
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
RECIPE=${1:?recipe}; STAGE=${2:?stage}; MODEL=${3:?model the server starts from}
NODES=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
SERVER=${NODES[0]}; TRAIN_NODES=$((SLURM_NNODES - 1)); MASTER=${NODES[1]}
mkdir -p logs
srun --nodes=1 --ntasks=1 --nodelist="$SERVER" bash -c \
  "source .venv/bin/activate && trl vllm-serve --model '$MODEL' --tensor_parallel_size 1 --data_parallel_size 8" &
sleep 60  # the server loads the model; the trainer retries its connection while it does
srun --nodes=$TRAIN_NODES --ntasks=$TRAIN_NODES --exclude="$SERVER" bash -c "
  source .venv/bin/activate
  reasonforge run '$RECIPE' --only '$STAGE' \
    stages.$STAGE.trainer.vllm_server_base_url=http://$SERVER:8000 \
    stages.$STAGE.launch.config=recipes/accelerate/zero3.yaml \
    stages.$STAGE.launch.num_processes=$((TRAIN_NODES * 8)) \
    stages.$STAGE.launch.num_machines=$TRAIN_NODES \
    stages.$STAGE.launch.machine_rank=\$SLURM_NODEID \
    stages.$STAGE.launch.main_process_ip=$MASTER"
