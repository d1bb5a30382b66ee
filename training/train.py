"""``skillbench train`` / ``python -m pytest_skillbench.training``: LoRA, partial or full SFT (TRL + PEFT).

The run is: resolve the base -> read the corpus -> patch the chat template (``templates``) and check that it
renders every row byte-identically -> verify the assistant-only loss mask on every row (``masks``) -> train
with ``SFTTrainer`` on the verified token ids and labels -> write the adapter (or model), the tokenizer
with the patched template and ``training_manifest.json``; optionally register the result as a student.

Heavy imports (torch, transformers, peft, trl) happen inside ``run_train`` so ``skillbench --help`` stays fast.
Multi-GPU: ``accelerate launch -m pytest_skillbench.training ARGS`` (see docs/training.md); only the main
process writes files.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

from pytest_skillbench.bench import bundled_dir
from pytest_skillbench.errors import SkillbenchError
from pytest_skillbench.settings import read_pyproject
from pytest_skillbench.students.embedded import EMBEDDED_NAME
from pytest_skillbench.students.hf import resolve_base
from pytest_skillbench.students.registry import resolve_student

from .corpus import file_sha256, load_chat_rows
from .masks import verify_corpus
from .registry import check_name_free, register_student
from .templates import check_equivalent, patch_template, template_hash

MODES = ("lora", "partial", "full")
OPTIMS = ("adamw", "adamw_8bit")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
# Defaults of the reference study (effective batch 8 = 4 per device x 2 accumulation steps).
MODE_DEFAULTS = {
    "lora": {"epochs": 3.0, "lr": 2e-4, "scheduler": "cosine", "warmup_ratio": 0.03, "weight_decay": 0.0},
    "partial": {"epochs": 2.0, "lr": 2e-5, "scheduler": "linear", "warmup_ratio": 0.05, "weight_decay": 0.01},
    "full": {"epochs": 2.0, "lr": 2e-5, "scheduler": "linear", "warmup_ratio": 0.05, "weight_decay": 0.01},
}
MANIFEST = "training_manifest.json"
PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes", "pytest-skillbench")


def default_corpus() -> Path:

    return bundled_dir("bench_tasks") / "demos.jsonl"


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="lora", help="lora (default), partial or full fine-tuning")
    p.add_argument("--base", default="smollm2-135m",
                   help="model id, model directory, or a registered student (default smollm2-135m)")
    p.add_argument("--corpus", default=None, help="chat rows JSONL (default: the bundled bench_tasks/demos.jsonl)")
    p.add_argument("--out", required=True, help="output directory (adapter/model, checkpoints, manifest)")
    p.add_argument("--name", default=None, help="register the result as [tool.skillbench.students.NAME] "
                                                "in ./pyproject.toml")
    g = p.add_argument_group("LoRA")
    g.add_argument("--lora-r", type=int, default=8)
    g.add_argument("--lora-alpha", type=int, default=16)
    g.add_argument("--lora-dropout", type=float, default=0.05)
    g.add_argument("--target-modules", default="all-linear",
                   help="'all-linear' (default) or a comma-separated list of module names")
    g = p.add_argument_group("partial")
    g.add_argument("--top-k-layers", type=int, default=4, help="unfreeze the top K transformer blocks (default 4)")
    g.add_argument("--train-embeddings", action="store_true",
                   help="also train the input embeddings (otherwise a tied lm_head is untied and trained alone)")
    g = p.add_argument_group("optimisation (defaults depend on --mode)")
    g.add_argument("--epochs", type=float, default=None, help="lora 3, partial/full 2")
    g.add_argument("--lr", type=float, default=None, help="lora 2e-4, partial/full 2e-5")
    g.add_argument("--scheduler", choices=SCHEDULERS, default=None, help="lora cosine, partial/full linear")
    g.add_argument("--warmup-ratio", type=float, default=None, help="lora 0.03, partial/full 0.05")
    g.add_argument("--weight-decay", type=float, default=None, help="lora 0, partial/full 0.01")
    g.add_argument("--batch-size", type=int, default=None,
                   help="per-device batch (default 4 on CUDA, 1 on CPU/MPS: a 1000-token row needs ~4 GB of "
                        "activations for SmolLM2-135M in fp32)")
    g.add_argument("--grad-accum", type=int, default=None,
                   help="gradient accumulation steps (default: effective batch 8, i.e. 2 on CUDA, 8 on CPU)")
    g.add_argument("--max-length", type=int, default=2048, help="tokens per row; longer rows are truncated")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--gradient-checkpointing", action="store_true")
    g.add_argument("--max-steps", type=int, default=-1, help="stop after N optimiser steps (overrides epochs)")
    g.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps (default 50)")
    g.add_argument("--save-only-model", action="store_true", help="checkpoints without optimiser state")
    g.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                   help="auto: on for CUDA with bf16 support, off elsewhere (bf16 is ~19x slower on CPU)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    g.add_argument("--optim", choices=OPTIMS, default="adamw",
                   help="adamw (torch) or adamw_8bit (bitsandbytes, needs CUDA)")
    g.add_argument("--allow-optim-fallback", action="store_true",
                   help="with --optim adamw_8bit and no CUDA, train with adamw instead of stopping")
    g.add_argument("--cache", default=None, help="skillbench cache dir (where the embedded model is converted)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_skillbench.training", description=__doc__.split("\n")[0])
    add_train_arguments(p)
    return p


# -- pieces that need no torch -------------------------------------------------------------------------
EFFECTIVE_BATCH = 8


def batch_plan(batch_size: int | None, grad_accum: int | None, device: str) -> tuple[int, int]:
    """(per-device batch, accumulation steps); by default an effective batch of 8 per device."""
    if batch_size is None:
        batch_size = 4 if device == "cuda" else 1
        if grad_accum is not None:
            return batch_size, grad_accum
    if grad_accum is None:
        grad_accum = max(1, EFFECTIVE_BATCH // batch_size)
    return batch_size, grad_accum


def resolved_hparams(args, device: str = "cpu") -> dict:
    batch_size, grad_accum = batch_plan(args.batch_size, args.grad_accum, device)
    d = dict(MODE_DEFAULTS[args.mode])
    for key in d:
        value = getattr(args, key)
        if value is not None:
            d[key] = value
    d.update({"mode": args.mode, "batch_size": batch_size, "grad_accum": grad_accum,
              "effective_batch": batch_size * grad_accum, "max_length": args.max_length,
              "seed": args.seed, "gradient_checkpointing": args.gradient_checkpointing,
              "max_steps": args.max_steps, "save_steps": args.save_steps, "save_only_model": args.save_only_model,
              "optim": args.optim})
    if args.mode == "lora":
        d.update({"lora_r": args.lora_r, "lora_alpha": args.lora_alpha, "lora_dropout": args.lora_dropout,
                  "target_modules": _target_modules(args.target_modules)})
    if args.mode == "partial":
        d.update({"top_k_layers": args.top_k_layers, "train_embeddings": args.train_embeddings})
    return d


def _target_modules(value: str):
    value = (value or "all-linear").strip()
    if value == "all-linear":
        return value
    mods = [m.strip() for m in value.split(",") if m.strip()]
    if not mods:
        raise SkillbenchError("--target-modules is empty")
    return mods


def validate_args(args) -> None:
    for key, lo in (("batch_size", 1), ("grad_accum", 1), ("max_length", 8), ("save_steps", 1), ("lora_r", 1)):
        if getattr(args, key) is not None and getattr(args, key) < lo:
            raise SkillbenchError(f"--{key.replace('_', '-')} must be >= {lo}")
    if args.max_steps == 0 or args.max_steps < -1:
        raise SkillbenchError("--max-steps must be a positive number of steps")
    if args.epochs is not None and args.epochs <= 0:
        raise SkillbenchError("--epochs must be > 0")
    if args.warmup_ratio is not None and not 0 <= args.warmup_ratio < 1:
        raise SkillbenchError("--warmup-ratio must be in [0, 1)")
    if not 0 <= args.lora_dropout < 1:
        raise SkillbenchError("--lora-dropout must be in [0, 1)")
    if args.mode == "partial" and args.top_k_layers < 1:
        raise SkillbenchError("--top-k-layers must be >= 1")
    if args.name is not None:

        check_name_free(args.name, Path.cwd())


def choose_optim(optim: str, allow_fallback: bool, cuda: bool, bnb: bool) -> tuple[str, str | None]:
    """Return (transformers optim name, note). 8-bit Adam needs CUDA + bitsandbytes."""
    if optim == "adamw":
        return "adamw_torch", None
    if cuda and bnb:
        return "adamw_bnb_8bit", None
    why = "no CUDA device" if not cuda else "bitsandbytes is not installed (pip install bitsandbytes)"
    if not allow_fallback:
        raise SkillbenchError(f"--optim adamw_8bit needs CUDA and bitsandbytes, and this machine has {why}; "
                              "use --optim adamw, or pass --allow-optim-fallback to train with adamw instead")
    return "adamw_torch", f"--optim adamw_8bit unavailable ({why}); used adamw (torch) instead"


def package_versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["python"] = sys.version.split()[0]
    return out


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# -- base resolution ---------------------------------------------------------------------------------------
def resolve_base_model(base: str, root: Path, cache: str | None) -> dict:
    """``--base`` -> {"path": what from_pretrained loads, "base": what a student entry names, "student": ...}."""

    cfg = read_pyproject(root)
    registry = cfg.get("students", {}) or {}
    cache = cache or cfg.get("cache") or None
    if base in registry or base == EMBEDDED_NAME:
        spec = resolve_student(base, registry, root)
        if spec.backend != "hf":
            raise SkillbenchError(f"--base {base}: student backend {spec.backend!r} has no local weights to train")
        if spec.adapter:
            raise SkillbenchError(f"--base {base}: this student is an adapter; merge it into its base first or "
                                  "train from its base")
        path = resolve_base(spec.base, cache)
        return {"path": path, "base": spec.base, "student": base, "revision": spec.revision,
                "adapter_base": EMBEDDED_NAME if spec.base == EMBEDDED_NAME else path}
    p = Path(base).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise SkillbenchError("--base directory has no config.json (not a model)", path=p)
        path = str(p.resolve())
        return {"path": path, "base": path, "student": path, "revision": None, "adapter_base": path}
    return {"path": base, "base": base, "student": None, "revision": None, "adapter_base": base}


# -- model set-up ---------------------------------------------------------------------------------------------
def _decoder_parts(model):
    """(list of transformer blocks, final norm module) for common causal-LM layouts."""
    from torch import nn

    n = getattr(model.config, "num_hidden_layers", None)
    blocks = None
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n:
            blocks = mod
            break
    if blocks is None:
        raise SkillbenchError(f"cannot find the transformer blocks of {type(model).__name__} for --mode partial")
    norm = None
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    for owner in (decoder, getattr(model, "model", None), getattr(model, "transformer", None)):
        for attr in ("norm", "final_layernorm", "ln_f", "final_layer_norm"):
            if owner is not None and isinstance(getattr(owner, attr, None), nn.Module):
                norm = getattr(owner, attr)
                break
        if norm is not None:
            break
    if norm is None:
        raise SkillbenchError(f"cannot find the final norm of {type(model).__name__} for --mode partial")
    return blocks, norm


def setup_partial(model, top_k: int, train_embeddings: bool = False) -> dict:
    """Freeze everything but the top ``top_k`` blocks, the final norm and lm_head (+ embeddings if asked).

    A tied lm_head shares its weight with the input embeddings; unless embeddings are trained too, it is
    untied (given its own copy, ``tie_word_embeddings=False``) so that only lm_head learns.
    """
    from torch import nn

    blocks, norm = _decoder_parts(model)
    if top_k > len(blocks):
        raise SkillbenchError(f"--top-k-layers {top_k}: the model has only {len(blocks)} blocks")
    for p in model.parameters():
        p.requires_grad_(False)
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    untied = False
    if head is not None and head.weight is emb.weight and not train_embeddings:
        head.weight = nn.Parameter(emb.weight.detach().clone())
        model.config.tie_word_embeddings = False
        if hasattr(model.config, "get_text_config"):
            model.config.get_text_config().tie_word_embeddings = False
        untied = True
    first = len(blocks) - top_k
    for block in list(blocks)[first:]:
        for p in block.parameters():
            p.requires_grad_(True)
    for p in norm.parameters():
        p.requires_grad_(True)
    if head is not None:
        head.weight.requires_grad_(True)
    if train_embeddings:
        emb.weight.requires_grad_(True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {"blocks": list(range(first, len(blocks))), "untied_lm_head": untied,
            "trainable_names": sorted(trainable)}


def count_params(model) -> dict:
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"trainable": trainable, "total": total, "share": trainable / total if total else 0.0}


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SkillbenchError("--device cuda: no CUDA device is available")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SkillbenchError("--device mps: MPS is not available")
    return choice


def _bf16(choice: str, device: str) -> tuple[bool, str | None]:
    import torch

    supported = device == "cuda" and torch.cuda.is_bf16_supported()
    if choice == "auto":
        return supported, None
    if choice == "off":
        return False, None
    if device == "cuda" and not supported:
        raise SkillbenchError("--bf16 on: this CUDA device does not support bf16")
    if device != "cuda":
        return True, f"bf16 on {device} works but is slow (measured ~19x slower per step on CPU)"
    return True, None


# -- the run -------------------------------------------------------------------------------------------------
def run_train(args, log=print) -> dict:
    """Train; return the manifest. ``args`` is the namespace ``add_train_arguments`` defines."""
    validate_args(args)
    resolved_hparams(args)  # option errors before anything heavy
    root = Path.cwd()
    out = Path(args.out).expanduser().resolve()
    corpus_path = Path(args.corpus).expanduser().resolve() if args.corpus else default_corpus()


    rows = load_chat_rows(corpus_path)
    base = resolve_base_model(args.base, root, args.cache)

    t_import = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    device = _device(args.device)
    hp = resolved_hparams(args, device)
    bf16, bf16_note = _bf16(args.bf16, device)
    bnb = False
    if args.optim == "adamw_8bit":
        import importlib.util

        bnb = importlib.util.find_spec("bitsandbytes") is not None
    optim, optim_note = choose_optim(args.optim, args.allow_optim_fallback, device == "cuda", bnb)
    for note in (bf16_note, optim_note):
        if note:
            log(f"[train] note: {note}")

    kw = {"revision": base["revision"]} if base["revision"] else {}
    tok = AutoTokenizer.from_pretrained(base["path"], **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    original_template = tok.chat_template
    patched, family = patch_template(tok)
    check_equivalent(tok, original_template, patched, [r.messages for r in rows], [r.where for r in rows])
    examples, mask_report = verify_corpus(tok, rows, patched, args.max_length)
    tok.chat_template = patched  # saved with every checkpoint and the final output
    log(f"[train] corpus {corpus_path}: {len(rows)} rows; chat template {family}, renders every row "
        f"identically; loss mask verified: {mask_report.loss_tokens} assistant tokens of "
        f"{mask_report.total_tokens} ({100 * mask_report.loss_tokens / max(1, mask_report.total_tokens):.1f}%)"
        + (f"; {mask_report.truncated_rows} row(s) truncated to {args.max_length} tokens"
           if mask_report.truncated_rows else ""))

    torch.manual_seed(args.seed)
    dtype = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base["path"], dtype=dtype, **kw)
    partial_info = None
    peft_config = None
    if args.mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                                 target_modules=hp["target_modules"], bias="none", task_type="CAUSAL_LM")
    elif args.mode == "partial":
        partial_info = setup_partial(model, args.top_k_layers, args.train_embeddings)
    import_s = time.perf_counter() - t_import

    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    cfg_kwargs = dict(
        output_dir=str(out), num_train_epochs=hp["epochs"], learning_rate=hp["lr"],
        lr_scheduler_type=hp["scheduler"], weight_decay=hp["weight_decay"],
        per_device_train_batch_size=hp["batch_size"], gradient_accumulation_steps=hp["grad_accum"],
        max_length=args.max_length, seed=args.seed, data_seed=args.seed,
        gradient_checkpointing=args.gradient_checkpointing, max_steps=args.max_steps,
        save_strategy="steps", save_steps=args.save_steps, save_only_model=args.save_only_model,
        logging_steps=1, logging_first_step=True, report_to="none", disable_tqdm=True, bf16=bf16, fp16=False,
        use_cpu=device == "cpu", optim=optim, packing=False, padding_free=False, assistant_only_loss=False,
        completion_only_loss=False, dataloader_num_workers=0)
    fields = SFTConfig.__dataclass_fields__
    if "warmup_ratio" in fields:  # transformers 4.x
        cfg_kwargs["warmup_ratio"] = hp["warmup_ratio"]
    else:  # transformers 5: a float < 1 is a ratio
        cfg_kwargs["warmup_steps"] = hp["warmup_ratio"]
    if "gradient_checkpointing_kwargs" in fields and args.gradient_checkpointing:
        cfg_kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    config = SFTConfig(**{k: v for k, v in cfg_kwargs.items() if k in fields})

    steps: list[dict] = []
    state = {"t": None}
    world = {"main": True}

    class _Recorder(TrainerCallback):
        def on_step_begin(self, a, st, control, **kw):
            state["t"] = time.perf_counter()

        def on_step_end(self, a, st, control, **kw):
            if state["t"] is not None:
                state["last_dt"] = time.perf_counter() - state["t"]

        def on_log(self, a, st, control, logs=None, **kw):
            if not logs or "loss" not in logs:
                return
            rec = {"step": st.global_step, "loss": float(logs["loss"]),
                   "learning_rate": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                   "epoch": logs.get("epoch"), "seconds": state.get("last_dt")}
            if steps and steps[-1]["step"] == rec["step"]:
                steps[-1] = rec
            else:
                steps.append(rec)
            if world["main"]:
                dt = f" {rec['seconds']:.2f}s" if rec["seconds"] is not None else ""
                log(f"[train] step {st.global_step}/{st.max_steps} loss {rec['loss']:.4f} "
                    f"lr {rec['learning_rate'] or 0:.2e}{dt}")

        def on_save(self, a, st, control, **kw):
            ck = out / f"checkpoint-{st.global_step}"
            if world["main"] and ck.is_dir():
                _fix_adapter_base(ck, base["adapter_base"])

    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tok,
                         peft_config=peft_config, callbacks=[_Recorder()])
    trainer.remove_callback(PrinterCallback)
    world["main"] = trainer.is_world_process_zero()
    params = count_params(trainer.model)
    log(f"[train] mode {args.mode}: {params['trainable']:,} trainable of {params['total']:,} parameters "
        f"({100 * params['share']:.2f}%) on {device}, optim {optim}, bf16 {bf16}")
    if partial_info:
        log(f"[train] partial: blocks {partial_info['blocks']} + final norm + lm_head"
            + (" (untied from the embeddings)" if partial_info["untied_lm_head"] else "")
            + (" + embeddings" if args.train_embeddings else ""))

    manifest = {
        "status": "running", "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": args.mode, "base": base["base"], "base_path": base["path"], "base_student": base["student"],
        "corpus": {"path": str(corpus_path), "sha256": file_sha256(corpus_path), "rows": len(rows)},
        "hyperparameters": hp, "optim_used": optim, "optim_note": optim_note, "bf16": bf16, "device": device,
        "chat_template_family": family,
        # the template used in training (with generation markers), saved with the tokenizer in the output
        "chat_template_hash": template_hash(patched),
        # the base's own template; verified to render every corpus row byte-identically to the one above
        "inference_chat_template_hash": template_hash(original_template),
        "loss_mask": {"kind": "assistant-only", "verified": True, **mask_report.to_dict()},
        "parameters": params, "partial": partial_info and {k: v for k, v in partial_info.items()
                                                          if k != "trainable_names"} | {
            "trainable_tensors": len(partial_info["trainable_names"])},
        "packages": package_versions(), "command": sys.argv, "steps": steps,
    }
    if world["main"]:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / MANIFEST, manifest)

    t0 = time.perf_counter()
    result = trainer.train()
    train_s = time.perf_counter() - t0
    trainer.save_model(str(out))  # every rank takes part (sharded/DeepSpeed saves); rank 0 writes
    if not world["main"]:
        return manifest
    _fix_adapter_base(out, base["adapter_base"])
    _save_tokenizer(tok, patched, out)
    if args.mode != "lora":
        # the saved model must reload with the tie setting it was trained with
        cfg_path = out / "config.json"
        if cfg_path.is_file() and partial_info and partial_info["untied_lm_head"]:
            cfg = json.loads(cfg_path.read_text())
            cfg["tie_word_embeddings"] = False
            write_json(cfg_path, cfg)
    timed = [s["seconds"] for s in steps if s.get("seconds")]
    manifest.update({
        "status": "finished", "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "global_steps": result.global_step, "train_loss": result.training_loss, "train_seconds": train_s,
        "load_seconds": import_s, "seconds_per_step": (sum(timed) / len(timed)) if timed else None,
        "checkpoints": sorted(p.name for p in out.glob("checkpoint-*") if p.is_dir()),
        "output": {"kind": "adapter" if args.mode == "lora" else "model", "path": str(out)}, "steps": steps})
    write_json(out / MANIFEST, manifest)
    first, last = (steps[0]["loss"], steps[-1]["loss"]) if steps else (None, None)
    log(f"[train] done: {result.global_step} steps in {train_s:.1f}s"
        + (f" ({manifest['seconds_per_step']:.2f}s/step)" if manifest["seconds_per_step"] else "")
        + (f", loss {first:.4f} -> {last:.4f}" if steps else "") + f"; output {out}")
    if args.name:

        entry = register_student(args.name, out, args.mode, base, root)
        manifest["registered"] = entry
        write_json(out / MANIFEST, manifest)
        log(f"[train] registered student {args.name!r} in {root / 'pyproject.toml'}: {entry}")
    return manifest


def _fix_adapter_base(path: Path, adapter_base: str) -> None:
    """Record the base as the plugin names it (``smollm2-135m``, not a cache path) in adapter_config.json."""
    cfg_path = path / "adapter_config.json"
    if not cfg_path.is_file():
        return
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("base_model_name_or_path") != adapter_base:
        cfg["base_model_name_or_path"] = adapter_base
        write_json(cfg_path, cfg)


def _save_tokenizer(tok, template: str, path: Path) -> None:
    tok.chat_template = template
    tok.save_pretrained(str(path))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run_train(args)
    except SkillbenchError as exc:
        print(f"training: error: {exc}", file=sys.stderr)
        return 2
    return 0
