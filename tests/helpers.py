"""Small helpers the tests share: a recipe around some stages, a JSONL file of rows, a saved tiny model, a local
HTTP server."""

import contextlib
import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def write_recipe(tmp_path: Path, stages: str) -> Path:
    """A recipe file whose run_dir is inside tmp_path; `stages` is the YAML of the stages, unindented."""
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nseed: 0\nrun_dir: {tmp_path / 'run'}\nstages:\n" + textwrap.indent(stages, "  "))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def save_tiny_model(folder: Path, seed: int) -> Path:
    """A saved tiny Llama model + char tokenizer + chat template, loadable with from_pretrained."""
    from pipeline.training import models

    tok = models.build_char_tokenizer()
    model = models.build_tiny_model({"layers": 2, "hidden": 32, "heads": 2, "kv_heads": 1}, tok, seed=seed)
    models.save_model(model, tok, folder)
    return folder


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's handler: `reply` sends a status, headers and a body; nothing is logged to the test output."""

    def reply(self, status: int, payload: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server(handler, monkeypatch):
    """`handler` served on a free local port (proxy variables cleared, so clients reach it); yields its /v1 URL."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
