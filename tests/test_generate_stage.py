"""The generate stage through recipes: canonical rows and ledger, procedural traces from the tasks stage, an
OpenAI-compatible server that fails in every way, and a kill -9 halfway followed by a rerun."""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from pipeline.data.schema import TRACE_COLUMNS
from pipeline.run import ledger, runner
from pipeline.run.recipe import load_recipe
from tests.helpers import write_jsonl, write_recipe

REPO = Path(__file__).resolve().parents[1]


def per_key(dataset) -> collections.Counter:
    return collections.Counter(zip(dataset["id"], dataset["sample_index"]))


def test_transformers_stage_writes_canonical_rows_and_a_ledger_row(tmp_path, tiny_model_dir):
    import datasets

    rows = [{"id": f"q{i}", "problem": f"{i}+{i}=?", "gold_answer": str(2 * i), "level": i % 3} for i in range(5)]
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    path = write_recipe(tmp_path, f"""  gen:
    kind: generate
    data: {data}
    model: {tiny_model_dir}
    prompt_template: "{{problem}}"
    prefill: "<think>\\n"
    n: 2
    temperature: 1.0
    max_new_tokens: 16
    batch_size: 2
""")
    result = runner.run(load_recipe(path))["gen"]
    out = datasets.load_from_disk(result.dataset)
    assert len(out) == 10 and set(per_key(out).values()) == {1}
    assert set(TRACE_COLUMNS) | {"teacher", "sampling", "level"} <= set(out.column_names)
    assert list(zip(out["id"], out["sample_index"])) == sorted(per_key(out))
    first = out[0]
    assert first["id"] == "q0" and first["gold_answer"] == "0" and first["level"] == 0
    assert first["response"].startswith("<think>\n") and first["messages"][-1]["content"] == first["response"]
    assert first["messages"][0] == {"role": "user", "content": "0+0=?"}
    assert first["teacher"] == f"transformers:{tiny_model_dir}" and first["sampling"]["n"] == 2
    assert first["finish_reason"] in ("stop", "length") and first["prompt_tokens"] > 0
    (attempt,) = ledger.read_attempts(tmp_path / "run")
    assert attempt["status"] == "done" and attempt["params"] > 0
    assert attempt["tokens_generated"] == sum(out["completion_tokens"]) > 0
    assert attempt["tokens_prompt"] == sum(out["prompt_tokens"])
    assert sum(result.metrics["finish_reasons"].values()) == 10 and result.metrics["new_rows"] == 10
    assert [d.action for d in runner.plan(load_recipe(path))] == ["cached"]


def test_procedural_traces_from_the_tasks_stage(tmp_path):
    import datasets

    path = write_recipe(tmp_path, """  problems: {kind: tasks, task: countdown, splits: {train: 6, test: 2}}
  gen: {kind: generate, backend: procedural, data: {from: problems, split: train}, prompt_template: "{problem}",
        prefill: "<think>\\n", n: 2}
""")
    results = runner.run(load_recipe(path))
    source = datasets.load_from_disk(results["problems"].dataset)["train"]
    out = datasets.load_from_disk(results["gen"].dataset)
    assert len(out) == 12 and set(per_key(out).values()) == {1}
    by_id = {row["id"]: row for row in source}
    for row in out:
        ref = by_id[row["id"]]
        assert row["response"] == f"<think>\n{ref['thinking']}\n</think>\n{ref['gold_answer']}"
        assert row["thinking"] == ref["thinking"] and row["answer"] == ref["gold_answer"]
        assert row["numbers"] == ref["numbers"] and row["target"] == ref["target"]
        assert row["teacher"] == row["source"] == "procedural" and row["finish_reason"] == "stop"
    assert ledger.read_attempts(tmp_path / "run")[-1]["tokens_generated"] == 0  # no model computed anything


class FakeOpenAI(BaseHTTPRequestHandler):
    """/v1/completions that fails once per (prompt, seed) by the prompt's tag: q1 429 + Retry-After, q2 500,
    q3 a reply slower than the client's timeout; prompts holding a string in `down` always get 500."""

    state: ClassVar[dict] = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt, seed, st = body["prompt"], body["seed"], self.state
        with st["lock"]:
            st["auth"].add(self.headers.get("Authorization"))
            st["attempts"][(prompt, seed)] += 1
            attempt = st["attempts"][(prompt, seed)]
            st["times"][(prompt, seed)].append(time.time())
        if any(tag in prompt for tag in st["down"]) or (attempt == 1 and "q2:" in prompt):
            return self.reply(500, {"error": "boom"})
        if attempt == 1 and "q1:" in prompt:
            return self.reply(429, {"error": "slow down"}, {"Retry-After": "0.3"})
        late = attempt == 1 and "q3:" in prompt
        if late:
            time.sleep(1.6)  # the client has given up by now: this reply is never read, so it is not counted
        else:
            with st["lock"]:
                st["served"][(prompt, seed)] += 1
        text = f"step with seed {seed}\n</think>\nanswer {len(prompt)}"
        self.reply(200, {"choices": [{"text": text, "index": 0, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}})

    def reply(self, status: int, obj: dict, headers: dict | None = None):
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout) and closed the socket

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    FakeOpenAI.state = {"lock": threading.Lock(), "auth": set(), "attempts": collections.Counter(),
                        "served": collections.Counter(), "times": collections.defaultdict(list), "down": set()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    server.daemon_threads = True
    server.handle_error = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", FakeOpenAI.state
    server.shutdown()
    server.server_close()


def test_openai_backend_survives_429_500_timeouts_and_a_dead_endpoint(tmp_path, tiny_model_dir, fake_server,
                                                                      monkeypatch):
    import datasets

    from pipeline.generation.openai_backend import RequestFailed

    base_url, state = fake_server
    key = "sk-test-5f3e9a1c77"
    monkeypatch.setenv("RF_TEST_KEY", key)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    # Batches go by prompt length: q4 (longest) and q5 form the last batch, which fails while q4 is "down".
    problems = {0: "1+1", 1: "2+2=?", 2: "3+3==?", 3: "4+4===?", 5: "6+6=======??", 4: "5+5 =============?"}
    data = write_jsonl(tmp_path / "p.jsonl", [{"problem": f"q{i}: {p}"} for i, p in problems.items()])
    path = write_recipe(tmp_path, f"""  gen:
    kind: generate
    backend: openai
    data: {data}
    model: served-tiny
    prompt_template: "{{problem}}"
    prefill: "<think>\\n"
    n: 2
    temperature: 0.7
    batch_size: 2
    options: {{base_url: "{base_url}", api_key_env: RF_TEST_KEY, tokenizer: "{tiny_model_dir}", timeout_s: 1.0,
               backoff_s: 0.05, max_retries: 2, concurrency: 4}}
""")
    state["down"].add("q4:")
    with pytest.raises(RequestFailed, match="giving up after 3 attempts") as failure:
        runner.run(load_recipe(path))
    assert key not in str(failure.value)
    shard_rows = [line for p in (tmp_path / "run/gen/shards").glob("part-*.jsonl") for line in p.read_text().splitlines()]
    assert len(shard_rows) == 8  # the two batches before the dead one

    state["down"].clear()
    out = datasets.load_from_disk(runner.run(load_recipe(path))["gen"].dataset)
    assert len(out) == 12 and set(per_key(out).values()) == {1}
    assert collections.Counter(out["id"]) == {i: 2 for i in set(out["id"])} and len(set(out["id"])) == 6
    for problem_id in set(out["id"]):
        texts = [r["response"] for r in out if r["id"] == problem_id]
        assert texts[0] != texts[1] and all(t.startswith("<think>\nstep with seed") for t in texts)
    assert set(out["completion_tokens"]) == {4} and set(out["prompt_tokens"]) == {11}
    served = {p: c for p, c in state["served"].items() if "q4:" not in p[0] and "q5:" not in p[0]}
    assert len(served) == 8 and set(served.values()) == {1}  # done work was never requested again
    retried = {tag: max(n for (p, _), n in state["attempts"].items() if tag in p) for tag in ("q1:", "q2:", "q3:")}
    assert retried == {"q1:": 2, "q2:": 2, "q3:": 2}
    q1_times = next(t for (p, _), t in state["times"].items() if "q1:" in p)
    assert q1_times[1] - q1_times[0] >= 0.29  # Retry-After honoured
    assert state["auth"] == {f"Bearer {key}"}
    leaked = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaked == []


KILL_ROWS = 240


def test_killed_halfway_then_rerun_gives_exactly_n_per_prompt(tmp_path, tiny_model_dir):
    import datasets

    data = write_jsonl(tmp_path / "p.jsonl", [{"id": f"k{i:03d}", "problem": f"{i}+{i * 7 % 13}=?"}
                                              for i in range(KILL_ROWS)])
    path = write_recipe(tmp_path, f"""  gen: {{kind: generate, data: {data}, model: {tiny_model_dir}, prompt_template: "{{problem}}",
        n: 2, temperature: 1.0, max_new_tokens: 16, batch_size: 4}}
""")
    shards = tmp_path / "run" / "gen" / "shards"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.stat().st_size for p in shards.glob("part-*.jsonl")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "gen" / "DONE").exists(), "finished before the kill: make the run longer"
    parts = sorted(shards.glob("part-*.jsonl"))
    assert parts, "no shard line appeared before the deadline"
    with open(parts[-1], "a") as f:
        f.write('{"id": "k000", "sample_index": 1, "problem": "0+0=?", "thi')  # as if killed mid-write

    result = runner.run(load_recipe(path))["gen"]
    out = datasets.load_from_disk(result.dataset)
    assert len(out) == 2 * KILL_ROWS and set(per_key(out).values()) == {1}
    assert set(collections.Counter(out["id"]).values()) == {2}
    assert 0 < result.metrics["resumed_rows"] < 2 * KILL_ROWS
    assert result.metrics["new_rows"] + result.metrics["resumed_rows"] == 2 * KILL_ROWS
    lines = [line for p in shards.glob("part-*.jsonl") for line in p.read_text().splitlines()]
    assert len(lines) == 2 * KILL_ROWS  # no duplicate line was ever written, the torn one is gone
    statuses = [a["status"] for a in ledger.read_attempts(tmp_path / "run") if a["stage"] == "gen"]
    assert statuses == ["killed", "done"]
