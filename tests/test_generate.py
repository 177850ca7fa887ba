"""Generation backends and exactly-once shards, without the runner: transformers, procedural, vllm's missing extra."""

import json

import pytest

from pipeline.data.templates import check_template, fill_template
from pipeline.generation import SamplingParams, apply_stop, estimate_parameters, make_backend
from pipeline.generation.openai_backend import retry_after
from pipeline.generation.prompts import DEFAULT_TEMPLATE
from pipeline.run.shards import ShardStore, read_shards

PROMPTS = ["1+1=?", "what is 23*7?", "x", "a much longer prompt than the others, to pad the batch", "17-9=?", "ok"]




@pytest.fixture(scope="module")
def varied_model(tiny_model_dir):
    """The tiny model with large random weights, so greedy outputs depend on the prompt (at the default init
    scale every prompt decodes to the same newlines, and a padding bug would go unseen)."""
    import torch

    from pipeline.training.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return model.eval(), tokenizer


def render_all(backend):
    return [backend.render([{"role": "user", "content": p}]) for p in PROMPTS]


def test_transformers_left_padded_batches_equal_one_by_one(varied_model):
    model, tokenizer = varied_model
    batched = make_backend("transformers", model=model, tokenizer=tokenizer, batch_size=4)
    single = make_backend("transformers", model=model, tokenizer=tokenizer, batch_size=1)
    prompts = render_all(batched)
    params = SamplingParams(n=2, temperature=0, max_new_tokens=12)
    got, want = batched.generate(prompts, params), single.generate(prompts, params)
    assert [[c.text for c in s] for s in got] == [[c.text for c in s] for s in want]
    assert len({s[0].text for s in got}) >= 4, "outputs do not depend on the prompt: the check would be vacuous"
    for prompt, samples in zip(prompts, got):
        assert len(samples) == 2 and samples[0] == samples[1]  # greedy: one decode, copied
        assert samples[0].prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        c = samples[0]
        assert c.finish_reason in ("stop", "length")
        assert c.completion_tokens == 12 if c.finish_reason == "length" else c.completion_tokens <= 12


def test_transformers_sampling_is_seeded_and_stop_strings_cut(varied_model):
    model, tokenizer = varied_model
    backend = make_backend("transformers", model=model, tokenizer=tokenizer, batch_size=3)
    prompts = render_all(backend)
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=7)
    first, again = backend.generate(prompts, params), backend.generate(prompts, params)
    assert [[c.text for c in s] for s in first] == [[c.text for c in s] for s in again]
    other = backend.generate(prompts, SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=8))
    assert [[c.text for c in s] for s in first] != [[c.text for c in s] for s in other]
    assert all(len(s) == 3 for s in first) and any(len({c.text for c in s}) > 1 for s in first)

    stops = list("aeiouAEIOU0123")
    stopped = backend.generate(prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=16, seed=7, stop=stops))
    flat = [c for s in stopped for c in s]
    assert any(c.stop_reason for c in flat), "no sample hit a stop string: pick commoner ones"
    for c in flat:
        assert not any(s in c.text for s in stops)
        if c.stop_reason:
            assert c.finish_reason == "stop" and c.completion_tokens <= 16  # a stop may be the 16th token


def test_transformers_eos_ends_with_stop(tiny_model_dir):
    from pipeline.training.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    newline = tokenizer.convert_tokens_to_ids("\n")
    # At the default init scale this model greedily writes newlines; make "\n" a second eos (as Llama 3 has two).
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, newline]
    backend = make_backend("transformers", model=model, tokenizer=tokenizer, batch_size=2)
    (c,), = backend.generate([backend.render([{"role": "user", "content": "hi"}])], SamplingParams(temperature=0))
    assert (c.text, c.finish_reason, c.completion_tokens, c.stop_reason) == ("", "stop", 1, None)


def test_procedural_backend_writes_reference_solutions_after_the_prefill():
    backend = make_backend("procedural")
    rows = [{"thinking": "2+3=5", "answer": "5"}, {"solution": "7*6=42", "gold_answer": 42}]
    prompts = [backend.render([{"role": "user", "content": "2+3=?"}]) + "<think>\n",
               backend.render([{"role": "user", "content": "7*6=?"}])]
    (a, a2), (b, _) = backend.generate(prompts, SamplingParams(n=2), rows=rows)
    assert "<think>\n" + a.text == "<think>\n2+3=5\n</think>\n5" and a == a2
    assert b.text == "<think>\n7*6=42\n</think>\n42" and b.finish_reason == "stop" and b.completion_tokens is None
    (cut,), _ = backend.generate(prompts, SamplingParams(stop=["</think>"]), rows=rows)
    assert cut.text == "2+3=5\n" and cut.stop_reason == "</think>"
    with pytest.raises(ValueError, match="thinking or solution"):
        backend.generate(prompts, SamplingParams())
    with pytest.raises(ValueError, match="tasks"):
        backend.generate(prompts[:1], SamplingParams(), rows=[{"problem": "x"}])


def test_vllm_missing_extra_says_how_to_install():
    from pipeline.generation import vllm_installed

    if vllm_installed():
        pytest.skip("vllm is installed here")
    with pytest.raises(ImportError, match=r"pip install 'reasonforge\[vllm\]'"):
        make_backend("vllm", model="some/model")
    with pytest.raises(ValueError, match="use one of: transformers, vllm, openai, procedural"):
        make_backend("vlm")


def test_shards_skip_stored_keys_repair_torn_tails_and_lock(tmp_path):
    folder = tmp_path / "shards"
    rows = [{"id": f"p{i}", "sample_index": j, "text": f"{i}.{j}"} for i in range(3) for j in range(2)]
    with ShardStore(folder) as store:
        assert store.write(rows[:4]) == 4
        assert store.write(rows[2:]) == 2  # two already stored
        with pytest.raises(RuntimeError, match="another process is writing shards"):
            ShardStore(folder).__enter__()
    part = max(folder.glob("part-*.jsonl"))
    with open(part, "a") as f:
        f.write('{"id": "p9", "sample_index": 0, "te')  # a write killed halfway
    assert len(list(read_shards(folder))) == 6  # readers ignore the torn line
    with ShardStore(folder) as store:
        assert part.read_text().endswith("\n") and len(part.read_text().splitlines()) == 6
        assert store.done == {(r["id"], r["sample_index"]) for r in rows}
        assert store.write([{"id": "p9", "sample_index": 0, "text": "new"}, rows[0]]) == 1
    lines = [json.loads(line) for p in sorted(folder.glob("part-*.jsonl")) for line in p.read_text().splitlines()]
    assert len(lines) == 7 and len({(r["id"], r["sample_index"]) for r in lines}) == 7
    assert len(list(folder.glob("part-*.jsonl"))) == 2  # a new session appends to a new part


def test_template_keeps_latex_braces_and_names_missing_columns():
    assert fill_template(DEFAULT_TEMPLATE, {"problem": "1+1"}) == (
        "1+1\nPlease reason step by step, and put your final answer within \\boxed{}.")
    assert fill_template("\\frac{{a}}{{b}} {x}", {"x": 3}) == "\\frac{a}{b} 3"
    with pytest.raises(ValueError, match="names column 'question'.*columns: problem, id"):
        check_template("{question}", ["problem", "id"])


def test_small_helpers(tiny_model_dir):
    from pipeline.training.models import count_parameters, load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(str(tiny_model_dir))
    assert estimate_parameters(model.config) == count_parameters(model)
    assert apply_stop("abc</think>def", ["f", "</think>"]) == ("abc", "</think>")
    assert retry_after({"Retry-After": "2"}) == 2.0 and retry_after({"retry-after": "soon"}) is None
    assert 55 < retry_after({"Retry-After": _http_date(60)}) <= 60
    assert retry_after({}) is None


def _http_date(seconds_ahead: float) -> str:
    import email.utils
    import time

    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


def test_recipe_errors_name_the_key_and_the_fix(tmp_path):
    from pipeline.run.recipe import RecipeError, load_recipe

    def load(body: str):
        path = tmp_path / "r.yaml"
        path.write_text(f"name: t\nrun_dir: {tmp_path}\nstages:\n  gen: {{kind: generate, data: x.jsonl, {body}}}\n")
        with pytest.raises(RecipeError) as info:
            load_recipe(path)
        return str(info.value)

    assert "options.concurency is not an option of the openai backend; did you mean 'concurrency'" in load(
        "model: m, backend: openai, options: {concurency: 3}")
    assert "never put a key in a recipe" in load("model: m, backend: openai, options: {api_key: sk-1}")
    assert "uses no model" in load("model: m, backend: procedural")
    assert "stages.gen.backend" in load("model: m, backend: vlm")
    assert "top_p must be in (0, 1]" in load("model: m, top_p: 0")
    assert "needs a model" in load("n: 2")


def test_openai_chat_requests_continue_a_prefill_and_rebuild_reasoning(monkeypatch):
    from pipeline.generation.openai_backend import OpenAIBackend

    monkeypatch.setenv("RF_KEY", "sk-x")
    backend = OpenAIBackend("m", chat=True, tokenizer=None, api_key_env="RF_KEY", extra_body={"top_k": 20})
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>\n"}]
    body = backend._body(messages, SamplingParams(stop=["</answer>"]), seed=5)
    assert body["messages"] == messages and body["continue_final_message"] and not body["add_generation_prompt"]
    assert (body["seed"], body["n"], body["stop"], body["top_k"]) == (5, 1, ["</answer>"], 20)
    assert "sk-x" not in json.dumps(body) and backend.url.endswith("/v1/chat/completions")
    reply = {"choices": [{"message": {"content": "4", "reasoning_content": "2+2=4"}, "finish_reason": "length"}]}
    c = backend._completion(reply, messages, SamplingParams())
    assert (c.text, c.finish_reason, c.completion_tokens) == ("<think>\n2+2=4\n</think>\n4", "length", None)
    monkeypatch.delenv("RF_KEY")
    with pytest.raises(ValueError, match="RF_KEY is not set"):
        OpenAIBackend("m", chat=True, api_key_env="RF_KEY")
