"""Physical ranges of recipe numbers: every learning rate, length, count and size field is one of these types,
so -1, 0, NaN, inf or 10**12 is refused when the recipe loads, with the key's name (recipe.loader formats it).

The bounds are loose outer limits of any Qwen2.5-family run, not tuning advice. For scale (Qwen2.5 report and the
released configs): the 72B model has 80 layers, hidden size 8192, FFN 29,568, 64 query heads and 152,064
embedding rows; Qwen2.5-1M models take 1,010,000-token contexts; pre-training used 18T tokens. Whether a size fits
given GPUs is the memory plan's question (`qwenflow model info`), asked on top of these.
NaN and infinity are refused for every float of the recipe by `Strict` (allow_inf_nan=False).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

LearningRate = Annotated[float, Field(gt=0, le=1.0)]  # Adam-family peak LRs live far below 1
Length = Annotated[int, Field(ge=1, le=1 << 22)]  # tokens: 4M, 4x the longest Qwen2.5 context
Hidden = Annotated[int, Field(ge=1, le=1 << 16)]  # model width: 8x Qwen2.5-72B's 8192
FFNWidth = Annotated[int, Field(ge=1, le=1 << 18)]  # FFN width: ~9x Qwen2.5-72B's 29,568
Layers = Annotated[int, Field(ge=1, le=1024)]
Heads = Annotated[int, Field(ge=1, le=1024)]
Vocab = Annotated[int, Field(ge=1, le=1 << 20)]  # embedding rows: ~7x Qwen2.5's 152,064
Steps = Annotated[int, Field(ge=1, le=10**9)]  # optimizer steps and step intervals
Batch = Annotated[int, Field(ge=1, le=1 << 20)]  # sequences per step or per forward pass
Count = Annotated[int, Field(ge=1, le=10**9)]  # examples, prompts, pairs, items, documents
Bytes = Annotated[int, Field(ge=1, le=1 << 50)]  # 1 PiB
Chars = Annotated[int, Field(ge=0, le=10**9)]  # document length limits in characters
Epochs = Annotated[float, Field(gt=0, le=1000)]
Temperature = Annotated[float, Field(gt=0, le=100)]
Coefficient = Annotated[float, Field(ge=0, le=100)]  # loss weights, KL/DPO betas, weight decay
Theta = Annotated[float, Field(gt=0, le=1e10)]  # RoPE base: Qwen2.5-1M uses 1e7
Samples = Annotated[int, Field(ge=1, le=1024)]  # answers drawn per prompt
Seconds = Annotated[float, Field(gt=0, le=90 * 24 * 3600)]
