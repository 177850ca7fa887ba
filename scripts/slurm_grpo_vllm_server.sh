#!/usr/bin/env bash
# GRPO with a dedicated vLLM generation server (TRL's "server" mode): node 0 serves the policy with
# `trl vllm-serve` (data parallel over its 8 GPUs), the other nodes train and send generation requests to it; after
# each optimizer step the trainer pushes the new weights to the server over NCCL.
#   sbatch --nodes=3 scripts/slurm_grpo_vllm_server.sh \
#     recipes/grpo-qwen2.5-1.5b-math.yaml rl Qwen/Qwen2.5-1.5B-Instruct
# MODEL is what the server starts from: the grpo stage's starting model (for {from: STAGE}, that stage's
# runs/<recipe>/<stage>/model folder). The stage is switched to vllm_mode: server here; the server address goes in
# as trainer.vllm_server_base_url. On one node prefer vllm_mode: colocate (no server, no idle GPUs).
# The environment needs TRL's supported vLLM on every node (pip install 'trl[vllm]', see docs/SCALING.md).
#SBATCH --job-name=reasonforge-grpo
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
USAGE="usage: sbatch --nodes=N scripts/slurm_grpo_vllm_server.sh RECIPE STAGE MODEL [ACCELERATE_CONFIG] (N >= 2)"
RECIPE=${1:?$USAGE}; STAGE=${2:?$USAGE}; MODEL=${3:?$USAGE}; ACCEL_CONFIG=${4:-recipes/accelerate/zero3.yaml}
GPUS=${GPUS_PER_NODE:-8}; VENV=${VENV:-.venv}; PORT=${VLLM_PORT:-8000}
[ "${SLURM_NNODES:-1}" -ge 2 ] || { echo "$USAGE" >&2; exit 2; }
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
SERVER=${NODES[0]}; MASTER=${NODES[1]}; TRAIN_NODES=$((SLURM_NNODES - 1))
mkdir -p logs
srun --nodes=1 --ntasks=1 --nodelist="$SERVER" bash -c "
  if [ -f '$VENV/bin/activate' ]; then source '$VENV/bin/activate'; fi
  exec trl vllm-serve --model '$MODEL' --tensor_parallel_size 1 --data_parallel_size $GPUS --port $PORT" &
SERVER_STEP=$!
# The trainer waits for the server itself (GRPOConfig.vllm_server_timeout, 240 s by default); loading a large model
# can take longer, so wait for the health endpoint first.
until curl -sf "http://$SERVER:$PORT/health" > /dev/null; do
  kill -0 $SERVER_STEP 2> /dev/null || { echo "vllm-serve exited" >&2; exit 1; }
  sleep 10
done
export RF_RECIPE=$RECIPE RF_STAGE=$STAGE RF_CONFIG=$ACCEL_CONFIG RF_VENV=$VENV RF_MASTER=$MASTER
export RF_URL=http://$SERVER:$PORT RF_NODES=$TRAIN_NODES RF_PROCESSES=$((TRAIN_NODES * GPUS))
# SLURM_PROCID runs 0..TRAIN_NODES-1 over the training nodes in order, so task 0 is on MASTER (NODES[1]).
srun --nodes=$TRAIN_NODES --ntasks=$TRAIN_NODES --exclude="$SERVER" --kill-on-bad-exit=1 bash -c '
  if [ -f "$RF_VENV/bin/activate" ]; then source "$RF_VENV/bin/activate"; fi
  exec reasonforge run "$RF_RECIPE" \
    "stages.$RF_STAGE.trainer.use_vllm=true" \
    "stages.$RF_STAGE.trainer.vllm_mode=server" \
    "stages.$RF_STAGE.trainer.vllm_server_base_url=$RF_URL" \
    "stages.$RF_STAGE.launch.config=$RF_CONFIG" \
    "stages.$RF_STAGE.launch.num_processes=$RF_PROCESSES" \
    "stages.$RF_STAGE.launch.num_machines=$RF_NODES" \
    "stages.$RF_STAGE.launch.machine_rank=$SLURM_PROCID" \
    "stages.$RF_STAGE.launch.main_process_ip=$RF_MASTER" \
    --only "$RF_STAGE"'
kill $SERVER_STEP 2> /dev/null || true
