"""Offline always; tiny models built once per session."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# huggingface_hub, transformers and datasets read HF_HOME when first imported, so the session's HF_HOME is fixed
# here, before any test module imports them; `reasonforge` subprocesses inherit it. It starts empty (no cache from
# the machine leaks into a test); the `offline_hub` fixture fills it with the hub ids the recipes name.
HF_HOME = Path(tempfile.mkdtemp(prefix="reasonforge-hf-home-"))
atexit.register(shutil.rmtree, HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = str(HF_HOME)
for _name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE"):
    os.environ.pop(_name, None)  # each would override its folder under HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest
import torch

# Tiny models are dominated by per-op overhead: one thread is several times faster than two on 2 busy cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny Llama model + char tokenizer + chat template, loadable with from_pretrained."""
    from tests.helpers import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def offline_hub(request, tmp_path_factory):
    """HF_HOME (a Path) holding an offline hub cache built by tests/offline_hub.py: the shipped recipes' model ids
    (config, tokenizer, chat template, generation config; no weights) and dataset ids (a few dozen rows in the public
    schema) resolve by hub id with HF_HUB_OFFLINE=1, in-process and in `reasonforge` subprocesses. Once a test has
    used it, those ids resolve for the rest of the session. The converted tokenizers are kept in pytest's cache."""
    from tests.offline_hub import build_offline_hub

    cache = getattr(request.config, "cache", None)
    work_dir = cache.mkdir("offline_hub") if cache is not None else tmp_path_factory.mktemp("offline_hub_work")
    return build_offline_hub(HF_HOME, work_dir)
