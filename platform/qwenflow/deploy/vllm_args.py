"""Chart values for `engine: vllm` from a recipe: the context length the model was trained for and Qwen2.5's
long-context inference settings, expressed with vLLM's documented `vllm serve` flags (the chart renders them):

  --max-model-len       the trained length, times the YaRN factor when deploy.yarn is on
  --hf-overrides        {"rope_parameters": {rope_type: yarn, factor, original_max_position_embeddings, rope_theta}}
                        (vLLM dropped --rope-scaling for this) and, for deploy.attention=dca,
                        {"dual_chunk_attention_config": {chunk_size, local_size, original_max_position_embeddings}}
                        as in the Qwen2.5-1M configs; DCA also needs VLLM_ATTENTION_BACKEND=DUAL_CHUNK_FLASH_ATTN,
                        --enforce-eager and chunked prefill (the chart sets them from dualChunkAttention)
  --tensor-parallel-size the pod's GPU count (gpu.count)
"""

from __future__ import annotations

from qwenflow.longctx.dca import default_dca
from qwenflow.longctx.yarn import yarn_context, yarn_parameters

DCA_PREFILL_TOKENS = 131072  # chunked-prefill size the Qwen2.5-1M deployment guide uses with DCA


def trained_length(recipe) -> int:
    lc = recipe.long_context
    return lc.seq_lens[-1] if lc.enabled else recipe.pretrain.seq_len


def vllm_values(recipe) -> dict:
    """The chart's `vllm` block for `recipe` (long_context and deploy sections)."""
    trained = trained_length(recipe)
    deploy, lc = recipe.deploy, recipe.long_context
    overrides: dict = {}
    max_len = trained
    if deploy.yarn:
        overrides["rope_parameters"] = yarn_parameters({"rope_theta": float(lc.rope_theta)}, trained, lc.yarn_factor)
        max_len = yarn_context(overrides["rope_parameters"])
    dca = deploy.attention == "dca"
    if dca:
        overrides["dual_chunk_attention_config"] = default_dca(trained)
    return {
        "maxModelLen": max_len,
        "hfOverrides": overrides,
        "dualChunkAttention": dca,
        "maxNumBatchedTokens": DCA_PREFILL_TOKENS if dca else 0,
    }
