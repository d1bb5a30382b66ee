"""The transformers backend: batched greedy generation (shared-prefix prefill, ragged batches; see engine.py).

A ``ModelPool`` (one per process, on the session object) loads each base once; several adapters of one
base share that load through PEFT's named adapters. Device, dtype and model ids are options: nothing here
assumes a CPU.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from ..cache import file_hash
from ..errors import SkillbenchError
from . import engine, forced_reading
from .base import Backend, GenRequest, GenResult
from .embedded import EMBEDDED_NAME, converted_dir
from .engine import ENGINE_VERSION
from .registry import StudentSpec

DTYPES = ("auto", "float32", "bfloat16", "float16")
PROBE = [{"role": "user", "content": "Is every square a rectangle? Answer yes or no."}]


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            # under pytest-xdist, worker gwN takes GPU N mod count, so `-n auto` spreads models over GPUs
            import os

            worker = os.environ.get("PYTEST_XDIST_WORKER", "")
            if worker.startswith("gw") and worker[2:].isdigit() and torch.cuda.device_count() > 1:
                return f"cuda:{int(worker[2:]) % torch.cuda.device_count()}"
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    return device


def resolve_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "", "auto"):
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise SkillbenchError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
    return getattr(torch, dtype)


def resolve_base(base: str | None, cache_dir: str | Path | None) -> str:
    if base == EMBEDDED_NAME:
        return str(converted_dir(cache_dir))
    if not base:
        raise SkillbenchError("student has no base model (set `base` in its registry entry)")
    return base


def _model_config(path: str) -> dict | None:
    try:
        return json.loads((Path(path) / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


_SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size")


def check_adapter_base(spec: StudentSpec, base_path: str) -> None:
    """An adapter trained on another base is refused before any model is loaded."""
    adapter = Path(spec.adapter or "")
    if not (adapter / "adapter_config.json").is_file():
        raise SkillbenchError(f"student {spec.name!r}: adapter directory has no adapter_config.json", path=adapter)
    recorded = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not recorded or recorded in (spec.base, base_path):
        return
    a, b = _model_config(recorded), _model_config(base_path)
    if a is not None and b is not None:
        diff = [k for k in _SHAPE_KEYS if a.get(k) != b.get(k)]
        if not diff:
            return
        detail = ", ".join(f"{k} {a.get(k)} vs {b.get(k)}" for k in diff)
        raise SkillbenchError(f"student {spec.name!r}: adapter {adapter} was trained on {recorded}, "
                              f"not on the registered base {spec.base} ({detail})")
    if Path(recorded).name != Path(base_path).name:
        raise SkillbenchError(f"student {spec.name!r}: adapter {adapter} was trained on {recorded!r}, "
                              f"but the registered base is {spec.base!r}")


class ModelPool:
    """Loads each (base, revision, dtype, device) once per process and attaches named adapters to it."""

    def __init__(self, cache_dir: str | Path | None = None):
        self.cache_dir = cache_dir
        self._bases: dict[tuple, dict] = {}
        self.loads = 0

    def get(self, base_path: str, revision: str | None, dtype, device: str) -> dict:
        key = (base_path, revision, str(dtype), device)
        if key not in self._bases:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            kwargs = {"revision": revision} if revision else {}
            try:
                tok = AutoTokenizer.from_pretrained(base_path, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype, **kwargs)
            except OSError as exc:
                raise SkillbenchError(f"cannot load model {base_path!r}: {exc}") from None
            model.to(device).eval()
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self.loads += 1
            self._bases[key] = {"model": model, "tokenizer": tok, "adapters": {}}
        return self._bases[key]

    def attach(self, entry: dict, adapter_path: str, name: str) -> None:
        if name in entry["adapters"]:
            return
        from peft import PeftModel

        try:
            with warnings.catch_warnings():
                # PEFT reads transformers' deprecated `is_gradient_checkpointing` while wrapping the model:
                # library-internal noise that would otherwise land in every evaluation's warnings summary
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                if isinstance(entry["model"], PeftModel):
                    entry["model"].load_adapter(adapter_path, adapter_name=name)
                else:
                    entry["model"] = PeftModel.from_pretrained(entry["model"], adapter_path, adapter_name=name)
            entry["model"].eval()
        except (RuntimeError, ValueError, OSError) as exc:
            raise SkillbenchError(f"adapter {adapter_path} does not fit its base: {str(exc).splitlines()[0]}") from None
        entry["adapters"][name] = adapter_path


def _adapter_key(name: str) -> str:
    return "a" + hashlib.sha1(name.encode()).hexdigest()[:10]


class HFBackend(Backend):
    supports_forcing = True

    def __init__(self, spec: StudentSpec, pool: ModelPool, *, max_new_tokens: int, batch_size: int,
                 device: str | None, dtype: str | None, repetition_penalty: float, cache_dir=None,
                 verify_adapter: bool = True):
        self.spec = spec
        self.pool = pool
        self.max_new_tokens = int(spec.max_new_tokens or max_new_tokens)
        self.batch_size = max(1, int(batch_size))
        self.device = resolve_device(spec.device or device)
        self.dtype = resolve_dtype(spec.dtype or dtype, self.device)
        self.repetition_penalty = float(spec.repetition_penalty or repetition_penalty)
        self.cache_dir = cache_dir
        if spec.adapter:
            adapter = Path(spec.adapter)
            if not (adapter / "adapter_config.json").is_file():
                raise SkillbenchError(f"student {spec.name!r}: adapter directory has no adapter_config.json",
                                      path=adapter)
            if not spec.base:
                spec.base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
        self.base_path = resolve_base(spec.base, cache_dir)
        if spec.adapter:
            check_adapter_base(spec, self.base_path)
        self.verify_adapter = verify_adapter
        # engine = "generate": transformers' own generate(), one prompt at a time -- slower, but independent of
        # the model internals the engine reads, so a transformers upgrade that breaks the engine still runs
        self.plain = spec.engine == "generate"
        if self.plain:
            self.supports_forcing = False  # forcing reads on from the engine's own rows
        self._entry: dict | None = None
        self._fp: dict | None = None
        self.forward_batches = 0
        self.last_stats = None

    # -- loading -------------------------------------------------------------------------------
    def _load(self) -> dict:
        if self._entry is None:
            entry = self.pool.get(self.base_path, self.spec.revision, self.dtype, self.device)
            if self.spec.adapter:
                self.pool.attach(entry, self.spec.adapter, _adapter_key(self.spec.adapter))
                if self.verify_adapter:
                    self._check_adapter_changes_logits(entry)
            self._entry = entry
        return self._entry

    def _model_ctx(self, entry: dict):
        import contextlib

        model = entry["model"]
        if self.spec.adapter:
            model.set_adapter(_adapter_key(self.spec.adapter))
            return contextlib.nullcontext(model)
        if entry["adapters"]:
            ctx = model.disable_adapter()

            class _Ctx:
                def __enter__(self_inner):
                    ctx.__enter__()
                    return model

                def __exit__(self_inner, *a):
                    return ctx.__exit__(*a)

            return _Ctx()
        return contextlib.nullcontext(model)

    def _check_adapter_changes_logits(self, entry: dict) -> None:
        """An adapter that leaves the logits unchanged would silently evaluate as its base: refuse it."""
        import torch

        tok, model = entry["tokenizer"], entry["model"]
        text = tok.apply_chat_template(PROBE, add_generation_prompt=True, tokenize=False)
        ids = tok(text, return_tensors="pt", add_special_tokens=False).to(self.device)
        model.set_adapter(_adapter_key(self.spec.adapter))
        with torch.no_grad():
            with_adapter = model(**ids).logits.float()
            with model.disable_adapter():
                without = model(**ids).logits.float()
        if torch.max(torch.abs(with_adapter - without)).item() < 1e-6:
            raise SkillbenchError(f"student {self.spec.name!r}: adapter {self.spec.adapter} does not change the "
                                  "model's logits on a probe prompt (untrained, or not applied)")

    # -- provenance ------------------------------------------------------------------------------
    def _tokenizer_template(self) -> str:
        if self._entry is not None:
            return self._entry["tokenizer"].chat_template or ""
        for cand in (Path(self.spec.adapter or ""), Path(self.base_path)):
            cfg = cand / "tokenizer_config.json"
            jinja = cand / "chat_template.jinja"
            if jinja.is_file():
                return jinja.read_text()
            if cfg.is_file():
                try:
                    return json.loads(cfg.read_text()).get("chat_template") or ""
                except json.JSONDecodeError:
                    pass
        return ""

    def generation_config(self) -> dict:
        return {"do_sample": False, "max_new_tokens": self.max_new_tokens,
                "repetition_penalty": self.repetition_penalty, "thinking": self.spec.thinking,
                "engine": "generate" if self.plain else ENGINE_VERSION}

    def fingerprint(self) -> dict:
        if self._fp is None:
            base = Path(self.base_path)
            weights = sorted(base.glob("*.safetensors")) + sorted(base.glob("*.bin")) if base.is_dir() else []
            fp = {"backend": "hf", "base": self.spec.base, "revision": self.spec.revision,
                  "weights": file_hash(weights, self.cache_dir) if weights else f"hub:{self.base_path}",
                  "dtype": str(self.dtype).replace("torch.", ""), "quantization": self.spec.quantization,
                  "chat_template": _template_fp(self._tokenizer_template(), self.spec.adapter or self.base_path),
                  "generation": self.generation_config()}
            if self.spec.adapter:
                ad = Path(self.spec.adapter)
                fp["adapter"] = file_hash(sorted(ad.glob("adapter_model.*")) + [ad / "adapter_config.json"],
                                          self.cache_dir)
            self._fp = fp
        return self._fp

    def path_info(self) -> dict:
        info = dict(self.fingerprint())
        info.update({"device": self.device, "base_path": self.base_path, "adapter_path": self.spec.adapter,
                     "batch_size": self.batch_size})
        trained = _trained_template_hash(self.spec.adapter or self.base_path, info.get("chat_template"))
        if trained:
            info["trained_chat_template"] = trained
        return info

    # -- generation ------------------------------------------------------------------------------
    def render(self, req: GenRequest) -> str:
        tok = self._load()["tokenizer"]
        kwargs = {"enable_thinking": False} if self.spec.thinking == "disable" else {}
        return tok.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=False, **kwargs)

    # -- answer forcing (forced_reading.py) ---------------------------------------------------------------
    def _force_spec(self, entry: dict, target, response: str):
        """The tokens a stopped row reads next and, for the options method, each option's first-token ids."""
        tok = entry["tokenizer"]
        feed = tok.encode(forced_reading.suffix_for(response), add_special_tokens=False)
        if target.method == "options":
            memo = entry.setdefault("option_groups", {})
            if target.options not in memo:
                memo[target.options] = forced_reading.option_token_groups(tok, target.options)
            if memo[target.options]:
                return engine.ForceSpec(feed, memo[target.options])
        return engine.ForceSpec(feed, None)

    @staticmethod
    def _stop_ids(entry: dict) -> dict:
        """Token ids whose text holds a line break, and those that are whitespace only: a greedy forced answer
        is its first non-empty line (a line break right after ``ANSWER:`` does not end it)."""
        if "newline_ids" not in entry:
            tok = entry["tokenizer"]
            texts = tok.batch_decode([[i] for i in range(len(tok))])
            entry["newline_ids"] = {"force_stop_ids": frozenset(i for i, t in enumerate(texts) if "\n" in t),
                                    "force_blank_ids": frozenset(i for i, t in enumerate(texts) if not t.strip())}
        return entry["newline_ids"]

    def _forced_result(self, entry: dict, target, raw: dict) -> dict:
        if "option_logprobs" in raw:
            return forced_reading.options_result(target.options, raw["option_logprobs"])
        return forced_reading.greedy_result(entry["tokenizer"].decode(raw["tokens"], skip_special_tokens=True))

    def force(self, items: list[tuple[GenRequest, str]], on_forced) -> None:
        """Force the answers of stored responses: each row is its rendered prompt + its response, read on from
        there exactly as a fresh row is after it stops (no answer is generated)."""
        items = [(r, t) for r, t in items if r.force is not None and t is not None]
        if not items:
            return
        entry = self._load()
        tok = entry["tokenizer"]
        prompts = [tok(self.render(r), add_special_tokens=False)["input_ids"]
                   + tok(t, add_special_tokens=False)["input_ids"] for r, t in items]
        specs = [self._force_spec(entry, r.force, t) for r, t in items]

        def done(i: int, raw: dict) -> None:
            on_forced(items[i][0], self._forced_result(entry, items[i][0].force, raw))

        with self._model_ctx(entry) as model:
            engine.greedy_generate(model, prompts, max_new_tokens=0, eos_ids=self._eos_ids(entry, model),
                            pad_id=tok.pad_token_id, device=self.device, batch_size=self.batch_size,
                            repetition_penalty=self.repetition_penalty, force=lambda i, _ids: specs[i],
                            on_forced=done, force_only=True, force_max_tokens=forced_reading.GREEDY_MAX_TOKENS,
                            **self._stop_ids(entry))

    def generate(self, requests: list[GenRequest], progress=None, on_result=None,
                 on_forced=None) -> list[GenResult]:
        """Greedy generation through :func:`engine.greedy_generate` (shared-prefix prefill, ragged batches).
        With ``on_forced``, a request with a ``force`` target has its answer forced as soon as its row stops,
        on the row's own KV cache, and ``on_forced(request, result)`` receives it."""
        if not requests:
            return []
        entry = self._load()
        tok = entry["tokenizer"]
        enc = tok([self.render(r) for r in requests], add_special_tokens=False)["input_ids"]
        if self.plain:
            return self._generate_plain(entry, requests, enc, progress, on_result)
        results: list[GenResult | None] = [None] * len(requests)
        counts = {"done": 0, "tokens": 0}

        def row_done(i: int, ids: list[int]) -> None:
            res = GenResult(text=tok.decode(ids, skip_special_tokens=True), gen_tokens=len(ids))
            results[i] = res
            counts["done"] += 1
            counts["tokens"] += len(ids)
            if on_result:
                on_result(requests[i], res)
            if progress:
                progress(counts["done"], len(requests), counts["tokens"])

        def admitted(n: int) -> None:
            self.forward_batches += 1

        def force(i: int, ids: list[int]):
            req = requests[i]
            return None if req.force is None else self._force_spec(entry, req.force, results[i].text or "")

        def forced(i: int, raw: dict) -> None:
            on_forced(requests[i], self._forced_result(entry, requests[i].force, raw))

        step = getattr(progress, "step", None)  # live token counts, when the progress printer takes them
        forcing_on = on_forced is not None and any(r.force is not None for r in requests)
        kw = dict(force=force, on_forced=forced, force_max_tokens=forced_reading.GREEDY_MAX_TOKENS,
                  **self._stop_ids(entry)) if forcing_on else {}
        with self._model_ctx(entry) as model:
            _, self.last_stats = engine.greedy_generate(
                model, enc, max_new_tokens=self.max_new_tokens, eos_ids=self._eos_ids(entry, model),
                pad_id=tok.pad_token_id, device=self.device, batch_size=self.batch_size,
                repetition_penalty=self.repetition_penalty, on_row_done=row_done, on_admit=admitted, on_step=step,
                **kw)
        return results  # type: ignore[return-value]

    def _generate_plain(self, entry: dict, requests: list[GenRequest], enc: list[list[int]], progress,
                        on_result) -> list[GenResult]:
        """``engine = "generate"``: greedy ``model.generate()`` one prompt at a time (no padding, so the same
        tokens as the engine), each answer cut at its first end token."""
        import torch

        tok = entry["tokenizer"]
        results: list[GenResult] = []
        tokens = 0
        with self._model_ctx(entry) as model:
            eos = sorted(self._eos_ids(entry, model))
            for n, (req, ids) in enumerate(zip(requests, enc), 1):
                x = torch.tensor([ids], device=self.device)
                with torch.no_grad():
                    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                                         max_new_tokens=self.max_new_tokens, eos_token_id=eos,
                                         repetition_penalty=self.repetition_penalty, pad_token_id=tok.pad_token_id,
                                         temperature=None, top_p=None, top_k=None)
                self.forward_batches += 1
                new = out[0, len(ids):].tolist()
                stop = next((k for k, t in enumerate(new) if t in eos), len(new))
                res = GenResult(text=tok.decode(new[:stop], skip_special_tokens=True), gen_tokens=stop)
                results.append(res)
                tokens += stop
                if on_result:
                    on_result(req, res)
                if progress:
                    progress(n, len(requests), tokens)
        return results

    @staticmethod
    def _eos_ids(entry: dict, model) -> set[int]:
        """End tokens: the tokenizer's eos plus the model's generation-config eos (an int or a list)."""
        ids = {entry["tokenizer"].eos_token_id}
        cfg = getattr(model, "generation_config", None)
        extra = getattr(cfg, "eos_token_id", None) if cfg is not None else None
        ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
        return {int(i) for i in ids if i is not None}


def _training_manifest(trained_dir: str | None) -> dict | None:
    """``training_manifest.json`` of a ``skillbench train`` output dir, or of the run a checkpoint belongs to."""
    if not trained_dir:
        return None
    for cand in (Path(trained_dir) / "training_manifest.json", Path(trained_dir).parent / "training_manifest.json"):
        if cand.is_file():
            try:
                return json.loads(cand.read_text())
            except json.JSONDecodeError:
                return None
    return None


def _template_fp(template: str, trained_dir: str | None) -> str:
    """The chat-template hash of the inference path.

    ``skillbench train`` saves a patched copy of the base's template (``{% generation %}`` markers added) that
    it verified to render byte-identically to the base's own template (on probes and on every corpus row); such
    a template is recorded under the base template's hash (``inference_chat_template_hash``), so a trained
    student and its base share one inference path.
    """
    h = hashlib.sha256(template.encode()).hexdigest()[:16]
    manifest = _training_manifest(trained_dir) if trained_dir else None
    if manifest and h == manifest.get("chat_template_hash") and manifest.get("inference_chat_template_hash"):
        return manifest["inference_chat_template_hash"]
    return h


def _trained_template_hash(trained_dir: str | None, used: str | None = None) -> str | None:
    """The chat template (inference hash) a trained adapter/model was trained with, from its manifest."""
    manifest = _training_manifest(trained_dir)
    if not manifest:
        return None
    trained = manifest.get("chat_template_hash")
    if used and used in (trained, manifest.get("inference_chat_template_hash")):
        return used
    return manifest.get("inference_chat_template_hash") or trained


def build(spec: StudentSpec, session) -> HFBackend:
    """The ``hf`` entry of ``backends.STUDENT_BACKENDS``: a local model from the session's pool and options."""
    s = session.settings
    return HFBackend(spec, session.pool, max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, device=s.device,
                     dtype=s.dtype, repetition_penalty=s.repetition_penalty, cache_dir=session.cache_dir)
