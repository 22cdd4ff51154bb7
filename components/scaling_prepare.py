from kfp.dsl import Artifact, Dataset, Output


def scaling_prepare(grid: str, models: list, data: Output[Dataset], tokenizer_dir: Output[Artifact]) -> list:
    """Prepare the sweep's data and tokenizer once and list the grid's points (content keys) for ParallelFor.

    Args:
        grid: Shipped grid name (tiny) or a grid YAML path inside the image.
        models: Only these ladder models (empty: all).
        data: Prepared corpus for every point.
        tokenizer_dir: Tokenizer every point uses.

    Returns:
        The content keys of the points to run.
    """
    from pathlib import Path

    from qwenflow.data.prepare import prepare_data
    from qwenflow.recipe import load_recipe
    from qwenflow.scaling.grid import load_grid
    from qwenflow.tokenizer.build import build_tokenizer, iter_parquet_texts

    g = load_grid(grid)
    recipe = load_recipe(g.base_recipe)
    prepare_data(recipe, data.path)
    build_tokenizer(recipe, tokenizer_dir.path, iter_parquet_texts([Path(data.path) / "corpus" / "train.parquet"]))
    return [p.key for p in g.points() if not models or p.model.name in models]
