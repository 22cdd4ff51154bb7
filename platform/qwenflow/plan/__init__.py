"""Memory planning: will each training stage of a recipe fit the GPUs it asks for? (`qwenflow compile`/`submit`)."""

from .plan import PlanRefused, StagePlan, check, plan_recipe
from .report import render

__all__ = ["PlanRefused", "StagePlan", "check", "plan_recipe", "render"]
