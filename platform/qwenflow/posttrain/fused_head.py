"""Score only the labelled positions in TRL's fused LM head on every device, not just on Triton ones.

TRL 1.x (SFT, DPO, GRPO) swaps the model's forward for a fused LM head that returns per-token log-probs. On
CUDA/XPU it projects only the positions whose label is not -100; elsewhere it projects every position, because on
Neuron a changing number of positions recompiles the graph. On a CPU running eagerly nothing recompiles, and the
tiny recipe's SFT labels 4 of 25 tokens per row, so scoring all of them made the LM head ~40% of an SFT step.
The compact path is TRL's own (the same function, on fewer rows); the switch is one private name in trl, so
`compact_fused_lm_head` checks it is still there and says so if a TRL upgrade moved it.
"""

from __future__ import annotations

import torch

_XLA_LIKE = ("xla", "neuron", "hpu")  # graph-compiling devices: keep TRL's fixed-shape path there


def _compact_unless_graph_device(device: torch.device) -> bool:
    return device.type not in _XLA_LIKE


def compact_fused_lm_head() -> None:
    """Make TRL's fused LM head score only labelled positions on CPU too (idempotent, process-wide)."""
    # lazy: imports torch, transformers, trl (seconds to import)
    import trl
    import trl.trainer.utils as trl_utils

    current = getattr(trl_utils, "_use_triton", None)
    if current is _compact_unless_graph_device:
        return
    if not callable(current):
        raise RuntimeError(
            f"trl {trl.__version__}: trl.trainer.utils._use_triton is gone, so qwenflow cannot make "
            "the fused LM head compact on CPU; update qwenflow/posttrain/fused_head.py for this TRL"
        )
    # In trl.trainer.utils this name only decides compaction; the kernel module keeps its own copy to pick Triton.
    trl_utils._use_triton = _compact_unless_graph_device
