"""Offline always; tiny models built once per session."""

import os

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
    from pipeline import models

    tok = models.build_char_tokenizer()
    model = models.build_tiny_model({"layers": 2, "hidden": 32, "heads": 2, "kv_heads": 1}, tok, seed=0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    models.save_model(model, tok, folder)
    return folder
