"""validate-data's report as one self-contained HTML file, the form the KFP UI renders for an HTML artifact: each
dataset's Great Expectations checks rendered by GX's own Data Docs renderer (ValidationResultsPageRenderer), with
GX's stylesheet inlined and its CDN scripts dropped (clusters are often offline and KFP shows the page in a
sandboxed frame), plus the schema and mixture checks qwenflow runs outside GX as a plain table."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

_EXTERNAL = re.compile(
    r"<(script|link|img)\b[^>]*(?:src|href)=\"(?:https?:|\.\./)[^\"]*\"[^>]*>(?:\s*</script>)?", re.I
)


def _gx_result(kind: str, checks: list[dict]):
    """GX validation result objects for the checks that are GX expectations; the rest are returned as they are."""
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    results, other = [], []
    for c in checks:
        kwargs = dict(c.get("kwargs") or {})
        if c.get("column") and "column" not in kwargs and "," not in c["column"]:
            kwargs["column"] = c["column"]
        cfg = ExpectationConfiguration(type=c["expectation"], kwargs=kwargs)
        try:
            cfg.to_domain_obj()  # a GX expectation with valid arguments; qwenflow's own checks are not
        except Exception:  # noqa: BLE001 - GX raises several types for unknown names and bad kwargs
            other.append(c)
            continue
        results.append(
            ExpectationValidationResult(
                success=c["success"],
                expectation_config=cfg,
                result={
                    "observed_value": c.get("observed"),
                    "element_count": c.get("rows"),
                    "unexpected_count": c.get("unexpected_count"),
                    "partial_unexpected_list": c.get("examples") or [],
                },
            )
        )
    ok = sum(r.success for r in results)
    suite = ExpectationSuiteValidationResult(
        success=all(r.success for r in results),
        results=results,
        suite_name=f"{kind}_contract",
        meta={},
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": ok,
            "unsuccessful_expectations": len(results) - ok,
            "success_percent": 100.0 * ok / len(results) if results else 100.0,
        },
    )
    return suite, other


def _body(page: str) -> str:
    m = re.search(r"<body[^>]*>(.*)</body>", page, re.S | re.I)
    return _EXTERNAL.sub("", m.group(1) if m else page)


def _other_table(checks: list[dict]) -> str:
    if not checks:
        return ""
    rows = "".join(
        f"<tr class={'ok' if c['success'] else 'bad'}><td>{html.escape(c.get('file', ''))}</td>"
        f"<td>{html.escape(c['expectation'])}</td><td>{html.escape(str(c.get('column', '')))}</td>"
        f"<td>{'pass' if c['success'] else 'FAIL'}</td><td>{html.escape(str(c.get('observed'))[:300])}</td></tr>"
        for c in checks
    )
    return (
        "<h4>Schema and mixture checks</h4><table class='table table-sm'><tr><th>file</th><th>check</th>"
        f"<th>column</th><th>result</th><th>observed</th></tr>{rows}</table>"
    )


def render(report_dir: str | Path, out_file: str | Path) -> Path:
    """One HTML file from validate-data's per-kind JSON reports (`<kind>/validation_<kind>.json`)."""
    import great_expectations
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    css_dir = Path(great_expectations.__file__).parent / "render" / "view" / "static" / "styles"
    import jinja2

    # GX's stylesheet is itself a Jinja template (font paths per page type); render it for a validation page.
    css = jinja2.Template((css_dir / "data_docs_default_styles.css").read_text(encoding="utf-8")).render(
        renderer_type="ValidationResultsPageRenderer"
    )
    sections, summary = [], []
    for path in sorted(Path(report_dir).glob("*/validation_*.json")):
        rep = json.loads(path.read_text(encoding="utf-8"))
        suite, other = _gx_result(rep["kind"], rep["checks"])
        page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(suite))
        verdict = "PASSED" if rep["success"] else "FAILED"
        summary.append(
            f"<li><a href='#{rep['kind']}'>{html.escape(rep['kind'])}</a>: {verdict}, "
            f"{sum(rep['rows'].values())} rows, {len(rep['checks'])} checks</li>"
        )
        sections.append(
            f"<section id='{rep['kind']}'><h2>{html.escape(rep['kind'])} dataset: {verdict}</h2>"
            f"<p>{html.escape(rep['directory'])}</p>{_other_table(other)}{_body(page)}</section><hr>"
        )
    if not sections:
        raise FileNotFoundError(f"{report_dir}: no validation_<kind>.json reports to render")
    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>qwenflow data validation</title>"
        f"<style>{css}\n.ok td{{background:#eef8ee}} .bad td{{background:#fbe9e9}} body{{padding:1em}}</style>"
        f"</head><body><h1>Data validation (Great Expectations)</h1><ul>{''.join(summary)}</ul>"
        f"{''.join(sections)}</body></html>"
    )
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out
