"""Validate rendered Kubernetes manifests offline: kubernetes-validate (strict) for the built-in kinds,
a small schema for the Prometheus-operator CRDs it does not know."""

from __future__ import annotations

import yaml

KUBE_VERSIONS = ("1.29.0", "1.33.0")

# kubernetes-validate ships only core schemas; CRDs get the subset of the operator's schema the chart uses.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": {"type": "object", "properties": {"matchLabels": {"type": "object"}}},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def documents(rendered: dict[str, str] | str) -> list[dict]:
    """Every non-empty YAML document in a Helm render (NOTES.txt skipped) or a multi-document string."""
    texts = rendered.values() if isinstance(rendered, dict) else [rendered]
    keys = rendered.keys() if isinstance(rendered, dict) else [""]
    docs = []
    for key, text in zip(keys, texts):
        if key.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def validate(doc: dict, versions=KUBE_VERSIONS) -> list[str]:
    """Problems with one manifest (empty when valid) against every Kubernetes version given."""
    import jsonschema
    import kubernetes_validate as kv

    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    crd = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
    if crd is not None:
        errors = sorted(jsonschema.Draft7Validator(crd).iter_errors(doc), key=str)
        return [f"{where}: {e.message} at {'/'.join(map(str, e.path))}" for e in errors]
    problems = []
    for version in versions:
        try:
            kv.validate(doc, version, True)
        except kv.ValidationError as e:
            problems.append(f"{where} (k8s {version}): {e.message} at {'/'.join(map(str, e.path))}")
        except Exception as e:  # SchemaNotFoundError etc.: an unknown kind is a failure, not a pass
            problems.append(f"{where} (k8s {version}): {type(e).__name__}: {e}")
    return problems
