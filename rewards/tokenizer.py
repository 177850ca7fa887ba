"""Loading tokenizers: the one place the rewards and the pipeline call ``AutoTokenizer.from_pretrained``.

A leaf module (nothing else of rewards/ is imported), so a stage that loads a tokenizer does not depend on the
reward functions' code. transformers is imported on first use.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_shared: dict[str, object] = {}


def fresh_tokenizer(source, trust_remote_code: bool = False):
    """A new tokenizer from a hub id or folder: the caller may change it (padding side, added tokens)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)


def shared_tokenizer(path: str):
    """The tokenizer at ``path``, loaded once per process; callers only read it (lengths, chat templates)."""
    with _lock:
        if path not in _shared:
            _shared[path] = fresh_tokenizer(path)
        return _shared[path]
