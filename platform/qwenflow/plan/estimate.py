"""Peak memory of one training process (one GPU) for a stage, from the recipe alone: no torch, no model build.

    peak = model states (weights + optimizer, sharded by the strategy; DDP's gradient buckets)
         + max(training: activations + logits + the gradients already accumulated (all of them from the second
                 micro batch of an accumulated step on; else the LM head's, which the backward makes first),
               end of backward: gradients,
               GRPO generation: KV cache + weights gathered for generate)
         + reference model (DPO; GRPO with beta > 0) + runtime (CUDA context and NCCL buffers, or on CPU the
           interpreter with torch/transformers/TRL loaded)

Model states follow the ZeRO paper's accounting (Rajbhandari et al., 2020): 16 bytes per parameter for mixed-
precision AdamW, whichever way an engine splits them (HF/accelerate keep fp32 weights and autocast: 4 + 4 grads + 8
moments; DeepSpeed bf16: 2 + 2 + 12 master/moments). ZeRO-2 shards gradients and optimizer state, ZeRO-3 and FSDP2
everything (plus the layers gathered while they run); cpu_offload moves optimizer state off the GPU (ZeRO-3: the
parameters too). Activations per token per layer count the tensors autograd keeps in a Qwen2 decoder layer with
SDPA attention (no s^2 score matrix): the residual input, two RMSNorm outputs, q/k/v, rotated q/k, the attention
output and the SwiGLU FFN's gate, up, activation and product, i.e. 7h + 3kv + 4I elements (MoE: I of the top-k
experts plus the shared one). Gradient checkpointing keeps each layer's input and recomputes one layer at a time.
The pre-training engine's LM head (transformers' loss) keeps fp32 log-softmax output and, at the start of the
backward, its gradient and the upcast logits: 3 x tokens x vocab x 4 bytes. TRL's trainers (SFT, DPO, GRPO) score
tokens with a chunked log-prob kernel (trl.kernels.chunked_logprob) whose tiles are negligible next to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 1024**3
GPU_RUNTIME_GIB = 1.5  # CUDA context (~0.5 GiB on H100), NCCL communicators and cuBLAS workspaces
# One CPU training process (torch, transformers, TRL, accelerate, mlflow imported; tokenized data) before any model:
# measured by benchmarks/memory_plan.py as the peak RSS of the tiny model's stage processes, whose model states are
# ~20 MB: 0.79-0.81 GiB for pre-training and SFT, 1 and 2 processes.
CPU_RUNTIME_GIB = 0.80


@dataclass
class Workload:
    """What one process of a stage holds: the model, the batch it pushes through, and how it is spread."""

    stage: str
    params: int
    layers: int
    hidden: int
    kv: int  # key/value width (kv heads x head dim)
    ffn: int  # SwiGLU width one token goes through (MoE: top-k experts + shared expert)
    vocab: int
    seq: int  # tokens per sequence
    sequences: int  # sequences per forward pass (micro batch; x2 for chosen/rejected pairs)
    world: int  # processes the model is sharded over
    strategy: str
    checkpointing: bool
    offload: bool
    bf16: bool
    offload_params: bool = True  # ZeRO-3 offload moves parameters too (TRL stages; the pre-training engine: not)
    device: str = "gpu"  # gpu | cpu
    full_logits: bool = True  # the whole [tokens, vocab] logits (pre-training engine); False: TRL's chunked kernel
    reference: bool = False  # DPO, GRPO with beta > 0: a frozen copy of the starting model
    generation_sequences: int = 0  # GRPO: completions generated at once per process
    accum: int = 1  # micro batches per optimizer step (gradient accumulation)


@dataclass
class Estimate:
    parts: dict[str, float] = field(default_factory=dict)  # GiB
    phase: str = ""  # what sets the peak: activations, gradients, generation

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def _layer_elements(w: Workload) -> int:
    return 7 * w.hidden + 3 * w.kv + 4 * w.ffn


def estimate(w: Workload) -> Estimate:
    n, world = w.params, max(1, w.world)
    act_bytes = 2 if (w.bf16 and w.device == "gpu") else 4
    deepspeed = w.strategy in ("zero2", "zero3")
    # DeepSpeed keeps its own fp32 master partition next to the module's parameters even in fp32 (+4 bytes)
    weight_b, grad_b, optim_b = (2, 2, 12) if (deepspeed and w.bf16) else (4, 4, 12 if deepspeed else 8)
    weights: float
    grads: float
    optim: float
    weights, grads, optim = weight_b * n, grad_b * n, optim_b * n
    layer_params = max(0, n - w.vocab * w.hidden) / max(1, w.layers)
    gathered = 0.0
    grad_share = 1 / world if w.strategy in ("zero2", "zero3", "fsdp2") else 1.0
    head_grad = grad_b * w.vocab * w.hidden * grad_share  # the (tied) LM head's gradient, the backward's first
    if w.strategy in ("zero2", "zero3", "fsdp2"):
        grads, optim = grads / world, optim / world
    if w.strategy in ("zero3", "fsdp2"):
        weights = weights / world
        # FSDP2: the running layer and the prefetched next one. ZeRO-3 keeps gathered parameters live up to
        # stage3_max_live_parameters (default 1e9 elements): a model below that stays whole on every GPU.
        live = min(1e9, n) if w.strategy == "zero3" else 2 * layer_params
        gathered = live * (weight_b if w.strategy == "zero3" else (2 if w.bf16 else 4))  # FSDP2 gathers in bf16
    if w.offload and w.strategy != "ddp":
        optim = 0.0
        if w.strategy == "fsdp2" or (w.strategy == "zero3" and w.offload_params):
            weights = 0.0
    ddp_buckets = grads if (w.strategy == "ddp" and world > 1) else 0.0  # DDP's flat gradient buckets
    if deepspeed:  # its gradient reduce bucket (reduce_bucket_size, default 5e8 elements) in the gradient dtype
        ddp_buckets = min(5e8, n) * grad_b

    tokens = w.seq * w.sequences
    per_layer = tokens * _layer_elements(w) * act_bytes
    if w.checkpointing:
        activations = w.layers * tokens * w.hidden * act_bytes + per_layer
    else:
        activations = w.layers * per_layer
    logits = 3 * tokens * w.vocab * 4 if w.full_logits else 0.0
    training = activations + logits + gathered + (grads if w.accum > 1 else head_grad)

    generation = 0.0
    if w.generation_sequences:
        kv_cache = 2 * w.layers * w.kv * w.seq * w.generation_sequences * act_bytes
        step_logits = w.generation_sequences * w.vocab * 4 * 2
        # TRL gathers ZeRO-3's partitions whole for generate(); FSDP2 gathers layer by layer as it runs.
        full = 2 * n * (2 if w.bf16 else 4) if w.strategy == "zero3" else gathered
        generation = kv_cache + step_logits + full
    reference = 0.0
    if w.reference:  # loaded in fp32 like the policy; sharded with it under ZeRO-3 / FSDP2
        reference = 4 * n / (world if w.strategy in ("zero3", "fsdp2") else 1)

    phases = {"activations": training, "gradients": grads, "generation": generation}
    phase = max(phases, key=lambda k: phases[k])
    return Estimate(
        {
            "weights": weights / GIB,
            "optimizer": optim / GIB,
            "reference": reference / GIB,
            "ddp_buckets": ddp_buckets / GIB,
            phase: phases[phase] / GIB,
            "runtime": GPU_RUNTIME_GIB if w.device == "gpu" else CPU_RUNTIME_GIB,
        },
        phase,
    )
