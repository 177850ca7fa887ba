"""The `grpo` stage: GRPO with composable rewards over `trl.GRPOTrainer`, with guardrails, resume and curves.

    rl:
      kind: grpo
      model: {from: cold_start}
      data: {from: problems, split: train}
      rewards: [{name: accuracy, weight: 1.0}, {name: think_format, weight: 0.2},
                {name: helpfulness, weight: 0.5, model: {from: rm}}]
      trainer: {max_steps: 200, num_generations: 8, max_completion_length: 128, learning_rate: 2e-5}
      guardrails: {patience: 5, max_clipped_ratio: 0.5}

Each row becomes the chat prompt `[system?, {"role": "user", "content": <prompt_template filled from the row>}]`
(pipeline/data/templates.py: `{column}` fields, `{{`/`}}` literal braces; a data set with its own `prompt` column keeps it when `prompt_template` is left at its default). Every other column
reaches the rewards as a keyword argument, so `accuracy` reads `gold_answer`. Reward weights go to
`GRPOConfig.reward_weights`; a reward's `model: {from: STAGE}` is replaced by the path that stage saved.

Training resumes from the newest checkpoint in `checkpoints/`. A tripped guardrail (pipeline/training/guardrails.py) saves
a checkpoint, writes the reason to metrics.json and fails the stage with it: no `model/`, no DONE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pipeline.data.templates import check_template, fill_template, template_fields
from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef, ModelRef, parse_model_ref
from pipeline.run.registry import register_stage
from pipeline.training.guardrails import Guardrails

CURVE_KEYS = ["reward", "completions/mean_length", "completions/clipped_ratio", "frac_reward_zero_std", "kl"]
SUMMARY_KEYS = ("reward", "reward_std", "completions/mean_length", "completions/clipped_ratio",
                "completions/mean_terminated_length", "frac_reward_zero_std", "kl", "entropy", "train_loss")


@dataclass
class GRPOStage:
    model: ModelRef
    data: DataRef  # prompts: a `prompt` column, or rows rendered through prompt_template
    rewards: list[dict | str]  # [{name: accuracy, weight: 1.0, **params}, ...] or bare names; see `reasonforge ls`
    trainer: dict = field(default_factory=dict)  # -> trl.GRPOConfig, unchanged
    prompt_template: str = "{problem}"  # the user message: {column} fields, {{ }} literal braces
    system_prompt: str | None = None
    guardrails: dict = field(default_factory=dict)  # see pipeline/training/guardrails.py: action, patience, thresholds
    trainer_config: ClassVar[str] = "trl.GRPOConfig"

    def __post_init__(self):
        if not self.rewards:
            raise ValueError("rewards: give at least one reward, e.g. rewards: [{name: accuracy, weight: 1.0}]")
        self.rewards = [{"name": spec} if isinstance(spec, str) else spec for spec in self.rewards]
        seen = set()
        for i, spec in enumerate(self.rewards):
            name = check_reward_spec(spec, f"rewards[{i}]")
            if name in seen:
                raise ValueError(f"rewards[{i}]: '{name}' appears twice; TRL logs rewards by name, so merge them "
                                 f"into one entry")
            seen.add(name)
        if "reward_weights" in self.trainer:
            raise ValueError("trainer.reward_weights: set `weight:` on each reward instead")
        Guardrails.from_dict(self.guardrails)
        check_vllm_settings(self.trainer)
        if not template_fields(self.prompt_template):
            raise ValueError("prompt_template: it uses no column, so every prompt would be the same; write e.g. "
                             "'Solve: {problem}' (a brace that does not close a column name is literal text)")


def check_vllm_settings(trainer: dict) -> None:
    """TRL's vLLM modes pass through `trainer:` unchanged; GRPOConfig accepts any string for vllm_mode and fails only
    once training starts, so check the values here. vLLM itself is imported only at run time (its own env)."""
    mode = trainer.get("vllm_mode")
    if mode is not None and mode not in ("colocate", "server"):
        raise ValueError(f"trainer.vllm_mode: '{mode}' is not a TRL vLLM mode; use colocate (vLLM inside the "
                         "training processes) or server (a separate `trl vllm-serve`)")
    url = trainer.get("vllm_server_base_url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ValueError(f"trainer.vllm_server_base_url: '{url}' is not a URL; write e.g. http://node0:8000")


def check_reward_spec(spec, where: str) -> str:
    """The reward's name after validating its entry; builds it unless it needs a model (that loads at run time)."""
    import rewards

    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(  # noqa: TRY004 - recipe mistakes are ValueErrors, the one kind the loader reports
            f"{where}: a reward is {{name: NAME, weight: W, **params}}, got {spec!r}")
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ValueError(f"{where}.weight: must be a number, got {weight!r}")  # noqa: TRY004 - as above
    try:
        if "model" in spec:
            _check_model_param(spec["model"], where)
            if spec["name"] not in rewards.REGISTRY and "." not in spec["name"]:
                rewards.build_reward({"name": spec["name"]})  # raises with the available names
        else:
            rewards.build_reward(spec)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return spec["name"]


def _check_model_param(value, where: str) -> None:
    if isinstance(value, str) and value:
        return
    if isinstance(value, dict) and set(value) == {"from"} and isinstance(value["from"], str):
        return
    raise ValueError(f"{where}.model: expected a path or hub id, or {{from: STAGE}} naming a reward_model stage")


def resolve_reward_specs(specs: list, ctx: StageContext) -> list[dict]:
    """Specs with `model: {from: STAGE}` replaced by the folder that stage saved."""
    out = []
    for spec in specs:
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        if isinstance(spec.get("model"), dict):
            spec["model"] = str(ctx.resolve_model(parse_model_ref(spec["model"])))
        out.append(spec)
    return out


def build_prompts(dataset, cfg: GRPOStage):
    """The dataset with a chat `prompt` column; a ValueError naming the missing column when the template needs one."""
    use_own = "prompt" in dataset.column_names and cfg.prompt_template == GRPOStage.prompt_template
    if use_own:
        return dataset
    check_template(cfg.prompt_template, dataset.column_names)
    system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []

    def render(row):
        return {"prompt": system + [{"role": "user", "content": fill_template(cfg.prompt_template, row)}]}

    if "prompt" in dataset.column_names:
        dataset = dataset.remove_columns("prompt")
    return dataset.map(render, desc="rendering prompts")


def grpo_ledger_callback(attempt, params: int, config):
    """Feeds the ledger from GRPO's logs: tokens trained = prompt + completion tokens (TRL's token count), tokens
    generated = mean completion length x completions made since the last log, prompt tokens = the rest.

    Completions made per optimizer step are per_device_train_batch_size x gradient_accumulation_steps x processes
    / num_iterations: exact on average, off by part of a generation batch between two logs. TRL counts a
    completion's tokens once, but trains on them num_iterations times (tokens_trained counts each pass), runs the
    reference model over them when beta != 0 and the old policy when its steps do not line up with generation
    (TRL's own condition): both forward-only (tokens_forward). The context of the attention term is the mean
    prompt + completion length.
    """
    from transformers import TrainerCallback

    from pipeline.run import compute

    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps * config.world_size
    iterations = max(1, config.num_iterations)
    per_step /= iterations
    steps_per_generation = getattr(config, "steps_per_generation", None) or config.gradient_accumulation_steps
    old_policy = config.gradient_accumulation_steps % (steps_per_generation * iterations) != 0 or bool(
        getattr(config, "use_vllm", False) and getattr(config, "vllm_importance_sampling_correction", False))
    forward_passes = int(config.beta != 0.0) + int(old_policy)

    class GRPOLedger(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.tokens, self.step = state.num_input_tokens_seen, state.global_step
            self.shape = compute.shape_of(model) if model is not None else None

        def on_log(self, args, state, control, logs=None, **kwargs):
            length = (logs or {}).get("completions/mean_length")
            if length is None or state.num_input_tokens_seen <= self.tokens:
                return
            seen = state.num_input_tokens_seen - self.tokens
            sequences = round(per_step * (state.global_step - self.step))
            generated = min(seen, round(length * sequences))
            attempt.add(params=params, model=self.shape, context=seen / max(1, sequences), sequences=sequences,
                        tokens_trained=seen * iterations, tokens_forward=seen * forward_passes,
                        tokens_generated=generated, tokens_prompt=seen - generated)
            self.tokens, self.step = state.num_input_tokens_seen, state.global_step

    attempt.add(params=params)
    return GRPOLedger()


def load_policy(ref: ModelRef, ctx: StageContext):
    """(model, tokenizer); a tiny-init model is saved to `init_model/` first and loaded back, because TRL builds
    the KL reference model (beta > 0) from the policy's `name_or_path`, which a model built in memory lacks."""
    from pipeline.training import common as training
    from pipeline.training import models

    source = ctx.resolve_model(ref)
    if isinstance(source, dict):
        folder = ctx.stage_dir / "init_model"
        if ctx.is_main_process and not folder.exists():
            models.save_model(*models.load_model_and_tokenizer(source, seed=ctx.seed), folder)
        training.wait_for_everyone()  # under accelerate launch the other ranks load what rank 0 saved
        source = str(folder)
    return models.load_model_and_tokenizer(source, seed=ctx.seed, trust_remote_code=ref.trust_remote_code,
                                           config_overrides=ref.config_overrides)


def summarize(log_history: list[dict], reward_names: list[str]) -> dict:
    """Last logged value of each headline metric, the first and last reward, and the per-reward means."""
    from pipeline.training.common import final_metrics

    last = final_metrics(log_history)
    keys = list(SUMMARY_KEYS) + [f"rewards/{n}/mean" for n in reward_names]
    out = {k: last[k] for k in keys if k in last}
    rewards_logged = [e["reward"] for e in log_history if isinstance(e.get("reward"), (int, float))]
    if rewards_logged:
        out["reward_first"], out["reward_last"] = rewards_logged[0], rewards_logged[-1]
    return out


@register_stage("grpo", GRPOStage, help="GRPO with composable rewards (trl.GRPOTrainer), guardrails and resume")
def run(cfg: GRPOStage, ctx: StageContext) -> StageResult:
    """GRPO on the prompts; saves model/ with tokenizer and chat template, report/curves.{json,png}, metrics."""
    from trl import GRPOConfig, GRPOTrainer

    import rewards
    from pipeline.training import common as training
    from pipeline.training import guardrails, models

    settings = Guardrails.from_dict(cfg.guardrails)
    specs = resolve_reward_specs(cfg.rewards, ctx)
    model, tokenizer = load_policy(cfg.model, ctx)
    if settings.check_prefill:
        guardrails.check_prefill(tokenizer, specs)
    reward_fns = [rewards.build_reward(s) for s in specs]
    names = [fn.__name__ for fn in reward_fns]
    dataset = build_prompts(ctx.load_dataset(cfg.data), cfg)
    defaults = {"logging_steps": 1, "save_steps": 50, "reward_weights": [float(s.get("weight", 1.0)) for s in specs]}
    try:
        trainer_args = training.yaml_scientific_to_float(cfg.trainer)
        config = training.build_trl_config(GRPOConfig, trainer_args, ctx.stage_dir, ctx.seed, defaults)
    except ValueError as e:
        raise ValueError(f"trainer: {e}".splitlines()[0]) from None
    monitor = guardrails.GuardrailMonitor(settings, logger=ctx.log, context={
        "max_completion_length": config.max_completion_length, "eos_token": tokenizer.eos_token,
        "eos_token_id": tokenizer.eos_token_id})
    params = models.count_parameters(model)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_fns, args=config, train_dataset=dataset,
                          processing_class=tokenizer,
                          callbacks=[guardrails.guardrail_callback(monitor),
                                     grpo_ledger_callback(ctx.ledger, params, config)])
    resume = training.last_checkpoint(config)
    ctx.log.info("grpo: %d prompts, rewards %s, resume from %s", len(dataset), names, resume)
    trainer.train(resume_from_checkpoint=resume)
    history = trainer.state.log_history
    metrics = {**summarize(history, names), "global_step": trainer.state.global_step, "params": params,
               "resumed_from": resume and resume.rsplit("/", 1)[-1], "guardrails": monitor.summary()}
    if ctx.is_main_process:
        training.write_curves(history, ctx.stage_dir / "report", CURVE_KEYS[:1] + [f"rewards/{n}/mean" for n in names]
                              + CURVE_KEYS[1:], title=f"GRPO {ctx.name}")
    if monitor.stopped_by is not None:
        stop_with_reason(ctx, monitor, metrics, trainer)
    # every process joins the save: under ZeRO-3/FSDP the sharded weights are gathered before rank 0 writes
    training.save_trained_model(trainer, tokenizer, ctx.stage_dir / "model", ctx.is_main_process)
    return StageResult(model="model", report="report", metrics=metrics)


def stop_with_reason(ctx: StageContext, monitor, metrics: dict, trainer) -> None:
    """Write metrics.json with the guardrail's reason and raise GuardrailError; the checkpoint stays for inspection
    (changing the recipe changes the stage's fingerprint, and the runner then starts the stage afresh)."""
    from pipeline.training.common import last_checkpoint
    from pipeline.training.guardrails import GuardrailError

    trip = monitor.stopped_by
    checkpoint = last_checkpoint(trainer.args)
    if ctx.is_main_process:
        ctx.write_json("metrics.json", {**metrics, "status": "stopped_by_guardrail", "checkpoint": checkpoint})
    raise GuardrailError(f"guardrail {trip.name} stopped GRPO at step {trip.step}: {trip.message} "
                         f"(checkpoint kept: {checkpoint})")
