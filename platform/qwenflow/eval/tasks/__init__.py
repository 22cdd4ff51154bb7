"""Evaluation tasks: each is `run(lm, cfg) -> TaskResult`, reading its own data and scoring with its own rule."""
