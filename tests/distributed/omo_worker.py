"""One Online Merging Optimizer step on a small Qwen2 model, as 1 process or as 2 (FSDP2-sharded or DDP) under
torchrun; rank 0 saves the updated full weights. Run by test_online_merging_sharded.py."""

import sys

import torch
import torch.distributed as dist
from transformers import Qwen2Config, Qwen2ForCausalLM

from qwenflow.posttrain.online_merging import build_optimizer

mode, out = sys.argv[1], sys.argv[2]
world = 1 if mode == "single" else 2
if world > 1:
    dist.init_process_group("gloo")
rank = dist.get_rank() if world > 1 else 0
torch.manual_seed(0)
cfg = Qwen2Config(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=64,
    tie_word_embeddings=False,
)
model = Qwen2ForCausalLM(cfg)
base = {
    k: v + 0.01 * torch.randn(v.shape, generator=torch.Generator().manual_seed(i))
    for i, (k, v) in enumerate(model.state_dict().items())
}
# eps 1e-3: AdamW's first update is otherwise lr * sign(g) everywhere, and top-k among equal magnitudes would be
# decided by the last bit of the (all-reduced) gradients
opt = build_optimizer(
    model, sys.argv[3], lr=1e-2, weight_decay=0.1, reserve_p=0.3, alpha=0.2, base_state=base, seed=7, eps=1e-3
)
ids = torch.randint(0, 128, (4, 12), generator=torch.Generator().manual_seed(1))
mine = ids if world == 1 else ids[rank * 2 : (rank + 1) * 2]
if mode == "fsdp2":
    from torch.distributed.fsdp import fully_shard

    old = [p for g in opt.param_groups for p in g["params"]]
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for p in old]
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    new = dict(model.named_parameters())
    from torch.distributed.tensor import DTensor

    assert isinstance(new[order[0]], DTensor)  # really sharded
    it = iter(new[n] for n in order)  # what accelerate does after sharding: the optimizer gets the sharded params
    for g in opt.param_groups:
        g["params"] = [next(it) for _ in g["params"]]
    net = model
elif mode == "ddp":
    net = torch.nn.parallel.DistributedDataParallel(model)
else:
    net = model
for _ in range(2):
    loss = net(input_ids=mine, labels=mine).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
full = {}
for n, p in model.named_parameters():
    t = p.full_tensor() if hasattr(p, "full_tensor") else p
    full[n] = t.detach().clone()
if rank == 0:
    torch.save(full, out)
if world > 1:
    dist.destroy_process_group()
