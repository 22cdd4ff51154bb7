"""Build a small Qwen2 model with the ZeRO-3 partitioned path (or whole, as 1 process), save it, load it back
partition by partition, and have rank 0 save both full state dicts as safetensors. Run by test_sharded_build.py."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from qwenflow import dist
from qwenflow.models import io
from qwenflow.recipe import load_recipe

out, tied = Path(sys.argv[1]), sys.argv[2] == "tied"
recipe = load_recipe(
    "tiny",
    [
        "tokenizer.vocab_size=1000",
        "model.vocab_size=1000",  # rows that do not split evenly over 2 ranks or 1M-value read blocks
        "model.hidden_size=64",
        "model.num_layers=2",
        f"model.tie_embeddings={str(tied).lower()}",
        "pretrain.distributed.strategy=zero3",
    ],
)
strategy = recipe.pretrain.distributed
built = io.build_causal_lm(recipe.model, distributed=strategy, seed=3)
full = io.full_state_dict(built)
io.save(built, out / "model")
if dist.world_size() > 1:  # rank 0 writes; the others read it only after
    torch.distributed.barrier()
loaded = io.load_causal_lm(out / "model", distributed=strategy)
again = io.full_state_dict(loaded)
if dist.is_main():
    save_file(
        {k: v.contiguous() for k, v in full.items() if k != "lm_head.weight" or not tied}, out / "built.safetensors"
    )
    save_file(
        {k: v.contiguous() for k, v in again.items() if k != "lm_head.weight" or not tied}, out / "loaded.safetensors"
    )
