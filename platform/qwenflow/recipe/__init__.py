from .loader import DEFAULT_RECIPE, RecipeError, list_recipes, load_recipe, recipe_to_yaml
from .schema import Recipe

__all__ = ["DEFAULT_RECIPE", "Recipe", "RecipeError", "list_recipes", "load_recipe", "recipe_to_yaml"]
