"""Recipe overrides that keep a real run of the whole tiny pipeline to a few minutes on 2 cores: less text, a
smaller vocabulary and a handful of steps per stage (every stage still runs for real). Used by the end-to-end
test and `benchmarks/pipeline_overhead.py --smoke`."""

SMOKE = [
    "data.max_bytes_per_source=200000",
    "data.sft_examples=800",
    "data.rl_prompts=128",
    "data.eval_examples=32",
    "data.preference_pairs=128",
    "data.decontaminate=false",
    "tokenizer.train_bytes=1000000",
    "tokenizer.vocab_size=1024",
    "model.vocab_size=1024",
    "pretrain.max_steps=12",
    "pretrain.eval_every=6",
    "pretrain.checkpoint_every=4",
    "long_context.seq_lens=[512]",
    "long_context.max_steps=4",
    "long_context.checkpoint_every=2",
    "sft.max_steps=8",
    "reward.max_steps=4",
    "dpo.max_steps=2",
    "dpo.samples_per_prompt=2",
    "grpo.max_steps=2",
    "eval.limit=16",
    "eval.gates=[{metric: arithmetic/exact_match, min: 0.0}]",  # a few steps learn nothing yet: gate on presence
]
