"""Model and tokenizer sections: the architecture of a Qwen2.5-family model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Strict
from .ranges import Coefficient, FFNWidth, Heads, Hidden, Layers, Length, Theta, Vocab

MAX_PARAMS = 2 * 10**12


class MoESpec(Strict):
    """Fine-grained experts plus a shared expert (Qwen1.5-MoE / Qwen2-MoE style)."""

    num_experts: int = Field(60, ge=2, le=1024, description="Routed experts per MoE layer")
    top_k: int = Field(4, ge=1, le=1024, description="Experts each token is routed to")
    moe_intermediate_size: FFNWidth = Field(1408, description="FFN width of one routed expert")
    shared_expert_intermediate_size: int = Field(5632, ge=0, le=1 << 18, description="FFN width of the shared expert")
    router_aux_loss_coef: Coefficient = Field(0.001, description="Weight of the load-balancing loss")
    norm_topk_prob: bool = Field(False, description="Renormalise the top-k routing weights")

    @model_validator(mode="after")
    def _top_k_fits(self):
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({self.top_k}) cannot exceed num_experts ({self.num_experts})")
        return self


class ModelSpec(Strict):
    """Decoder architecture: GQA, SwiGLU, RoPE, QKV bias, pre-norm RMSNorm."""

    arch: Literal["dense", "moe"] = Field("dense", description="dense (Qwen2) or moe (Qwen2-MoE)")
    hidden_size: Hidden
    num_layers: Layers
    num_heads: Heads = Field(description="Query heads")
    num_kv_heads: Heads = Field(description="Key/value heads (GQA)")
    intermediate_size: FFNWidth = Field(description="SwiGLU FFN width (dense layers)")
    vocab_size: Vocab = Field(description="Embedding rows (padded vocabulary)")
    tie_embeddings: bool = Field(True, description="Share input embedding and LM head")
    max_position_embeddings: Length = Field(32768, description="Context length the final model is trained to")
    rope_theta: Theta = Field(10000.0, description="RoPE base during base pre-training")
    rms_norm_eps: float = Field(1e-6, gt=0, le=1)
    initializer_range: float = Field(0.02, gt=0, le=1)
    moe: MoESpec | None = Field(None, description="Required when arch is moe")

    @model_validator(mode="after")
    def _shapes_consistent(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads ({self.num_kv_heads}) must divide num_heads ({self.num_heads})")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        if self.arch == "moe" and self.moe is None:
            raise ValueError("arch is moe but the moe section is missing")
        if self.arch == "dense" and self.moe is not None:
            raise ValueError("a moe section is given but arch is dense")
        return self

    def approx_params(self) -> int:
        """Parameters from the shapes alone (no torch): embeddings, GQA attention with biases, SwiGLU FFN or experts."""
        h, kv = self.hidden_size, self.hidden_size // self.num_heads * self.num_kv_heads
        attn = h * h * 2 + h * kv * 2 + h + 2 * kv
        ffn = 3 * h * self.intermediate_size
        if self.moe is not None:
            ffn = 3 * h * (
                self.moe.num_experts * self.moe.moe_intermediate_size + self.moe.shared_expert_intermediate_size
            ) + h * (self.moe.num_experts + 1)  # routers
        emb = self.vocab_size * h * (1 if self.tie_embeddings else 2)
        return emb + self.num_layers * (attn + ffn + 2 * h) + h

    @model_validator(mode="after")
    def _size_is_physical(self):
        # 16 bytes per parameter (bf16 weights and grads, fp32 master and Adam moments) must fit some real cluster:
        # 2e12 parameters are 32 TB of training state, ~28x Qwen2.5-72B's 72.7B (exact count: qwenflow model info).
        n = self.approx_params()
        if n > MAX_PARAMS:
            raise ValueError(
                f"these shapes give ~{n / 1e9:,.0f}B parameters, over the {MAX_PARAMS / 1e12:g}T any "
                "cluster can train (16 bytes each of training state); check hidden_size, num_layers, "
                "intermediate_size, vocab_size and the moe section"
            )
        return self


class TokenizerSpec(Strict):
    """qwen2.5 = the real 151,643-token vocabulary; bpe = train a small byte-level BPE on the corpus."""

    kind: Literal["qwen2.5", "bpe"] = Field("qwen2.5")
    vocab_size: Vocab = Field(
        4096, ge=300, description="Total vocabulary (including the 22 control tokens) when kind is bpe"
    )
    train_bytes: int = Field(32_000_000, gt=0, le=1 << 50, description="Bytes of corpus text to train the BPE on")
