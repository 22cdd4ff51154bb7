"""Render a kustomization: `kubectl kustomize` when kubectl is on PATH, else the small subset infra/ uses
(resources, labels, images, replicas) in Python, so CI machines without kubectl still check the manifests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "labels", "images", "replicas"}


def render(directory: str | Path, prefer_kubectl: bool = True) -> list[dict]:
    directory = Path(directory)
    if prefer_kubectl and shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
        if out.returncode != 0:
            raise ValueError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    return render_python(directory)


def render_python(directory: Path) -> list[dict]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - SUPPORTED
    if unknown:
        raise ValueError(
            f"{directory}/kustomization.yaml uses {sorted(unknown)}, which the Python renderer lacks; "
            "install kubectl to render it"
        )
    docs: list[dict] = []
    for res in k.get("resources", []):
        path = directory / res
        if path.is_dir():
            docs += render_python(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for group in k.get("labels", []):
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
            if group.get("includeTemplates") or group.get("includeSelectors"):
                raise ValueError("labels with includeTemplates/includeSelectors need kubectl")
    counts = {r["name"]: r["count"] for r in k.get("replicas", [])}
    for d in docs:
        if d["metadata"]["name"] in counts and "replicas" in d.get("spec", {}):
            d["spec"]["replicas"] = counts[d["metadata"]["name"]]
        for c in _containers(d):
            c["image"] = _retag(c["image"], k.get("images", []))
    return docs


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
    return pod.get("containers", []) + pod.get("initContainers", [])


def _retag(image: str, rules: list[dict]) -> str:
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    for rule in rules:
        if rule["name"] == name:
            return (
                f"{rule.get('newName', name)}:{rule.get('newTag', tag)}"
                if rule.get("newTag", tag)
                else rule.get("newName", name)
            )
    return image
