from .builder import build_config, build_model
from .flops import ModelSize, model_size, training_memory_gb

__all__ = ["ModelSize", "build_config", "build_model", "model_size", "training_memory_gb"]
