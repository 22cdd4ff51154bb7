from kfp.dsl import Artifact, Dataset, Input


def scaling_point(grid: str, point_key: str, data: Input[Dataset], tokenizer_dir: Input[Artifact]) -> float:
    """Train one sweep point (a short pre-training run tracked in MLflow); a point already finished is reused.

    Args:
        grid: Shipped grid name or grid YAML path.
        point_key: Content key of the point (from scaling-prepare).
        data: Prepared corpus.
        tokenizer_dir: Tokenizer.

    Returns:
        The point's final validation loss.
    """
    import os
    from pathlib import Path

    from qwenflow.data.pack import pack_corpus
    from qwenflow.scaling.grid import load_grid
    from qwenflow.scaling.sweep import _client, finished_points, run_point

    g = load_grid(grid)
    point = next(p for p in g.points() if p.key == point_key)
    client, exp_id = _client()
    done = finished_points(client, exp_id)
    if point.key in done:
        return float(client.get_run(done[point.key]).data.metrics["val_loss"])
    work = Path(os.environ.get("QWENFLOW_WORK_DIR", "/tmp/qwenflow-work")) / "scaling" / g.name
    packed = work / f"packed-{g.seq_len}"
    pack_corpus(data.path, tokenizer_dir.path, g.seq_len, packed)
    return float(run_point(point, Path(data.path), Path(tokenizer_dir.path), work, packed, client, exp_id)["val_loss"])
