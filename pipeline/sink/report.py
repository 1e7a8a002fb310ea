"""DIR/report.html: one self-contained page (inline SVG, no script, no network) that shows what a build
did: records per source (kept and each reject reason), reasons, lengths, languages, licences, near-duplicate
cluster sizes and a few sample rows per source."""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq

PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]


def _rows(out_dir: Path, manifest: dict, table: str, columns: list[str]) -> list[dict]:
    rows: list[dict] = []
    for s in manifest["shards"]:
        if s["table"] == table:
            names = pq.read_schema(out_dir / s["path"]).names
            rows += pq.read_table(out_dir / s["path"], columns=[c for c in columns if c in names]).to_pylist()
    return rows


def stacked_bars(title: str, data: dict[str, dict[str, int]], keys: list[str]) -> str:
    """Horizontal stacked bars: one bar per row label, one colour per key, with a legend."""
    width, label_w, bar_h = 760, 190, 18
    total_max = max((sum(v.values()) for v in data.values()), default=1) or 1
    h = 30 + bar_h * 1.5 * len(data) + 20 * math.ceil(len(keys) / 4)
    out = [f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{h:.0f}">']
    y = 10.0
    for label, values in data.items():
        out.append(f'<text x="0" y="{y + 13:.0f}" font-size="12">{html.escape(label)}</text>')
        x = float(label_w)
        for i, k in enumerate(keys):
            v = values.get(k, 0)
            if v:
                w = (width - label_w - 60) * v / total_max
                out.append(
                    f'<rect x="{x:.1f}" y="{y:.0f}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{PALETTE[i % 10]}"><title>{html.escape(k)}: {v}</title></rect>'
                )
                x += w
        out.append(f'<text x="{x + 4:.0f}" y="{y + 13:.0f}" font-size="11">{sum(values.values())}</text>')
        y += bar_h * 1.5
    for i, k in enumerate(keys):
        lx, ly = (i % 4) * 190, y + 14 + 20 * (i // 4)
        out.append(f'<rect x="{lx}" y="{ly - 10:.0f}" width="10" height="10" fill="{PALETTE[i % 10]}"/>')
        out.append(f'<text x="{lx + 14}" y="{ly:.0f}" font-size="11">{html.escape(k)}</text>')
    out.append("</svg>")
    return f"<h2>{html.escape(title)}</h2>\n" + "".join(out)


def histogram(title: str, series: dict[str, list[int]]) -> str:
    """Log2-binned histograms of lengths, one row of bars per series."""
    out = [f"<h2>{html.escape(title)}</h2>"]
    for name, values in series.items():
        bins = Counter(int(math.log2(max(v, 1))) for v in values)
        top = max(bins.values(), default=1)
        lo, hi = min(bins, default=0), max(bins, default=0)
        w = 24
        svg = [
            f'<svg role="img" aria-label="{html.escape(name)}" width="{(hi - lo + 1) * w + 10}" height="90">'
        ]
        for i, b in enumerate(range(lo, hi + 1)):
            bh = 60 * bins.get(b, 0) / top
            svg.append(
                f'<rect x="{i * w}" y="{65 - bh:.1f}" width="{w - 2}" height="{bh:.1f}" fill="#4e79a7"><title>{2**b}-{2 ** (b + 1) - 1}: {bins.get(b, 0)}</title></rect>'
            )
            svg.append(f'<text x="{i * w}" y="80" font-size="9">{2**b}</text>')
        svg.append("</svg>")
        out.append(f"<h3>{html.escape(name)} ({len(values)} rows)</h3>" + "".join(svg))
    return "\n".join(out)


def table(title: str, header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def render_report(out_dir: Path) -> str:
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    cols = ["source", "lang", "license", "instruction", "input", "output", "text"]
    kept = _rows(out_dir, manifest, "instruct", cols) + _rows(out_dir, manifest, "text", cols)
    rejects = _rows(out_dir, manifest, "rejects", ["source", "reason", "duplicate_of", "stage"])
    counts = manifest["counts"]
    reasons = sorted({r for c in counts.values() for r in c["rejected"]})
    flow = {name: {"kept": c["kept"], **c["rejected"]} for name, c in counts.items()}
    parts = [
        f"<h1>Build report: {html.escape(manifest['name'])}</h1>",
        f"<p>recipe sha256 {manifest['recipe_sha256'][:16]}…, {len(manifest['shards'])} shards, schema {manifest['schema_version']}</p>",
        stacked_bars("Records per source: kept and rejected by reason", flow, ["kept", *reasons]),
    ]
    by_stage = Counter(r["stage"] for r in rejects)
    by_reason = Counter(r["reason"] for r in rejects)
    parts.append(
        table(
            "Rejects by stage and reason",
            ["stage", "reason", "rows"],
            [[s, r, n] for (s, r), n in sorted(Counter((x["stage"], x["reason"]) for x in rejects).items())],
        )
    )
    lengths: dict[str, list[int]] = defaultdict(list)
    for r in kept:
        text = r.get("text") or "\n".join(
            x for x in (r.get("instruction"), r.get("input"), r.get("output")) if x
        )
        lengths[f"{r['source']} ({r['lang']})"].append(len(text))
    parts.append(
        histogram("Length in characters per source and language (log2 bins)", dict(sorted(lengths.items())))
    )
    langs = {name: dict(Counter(r["lang"] for r in kept if r["source"] == name)) for name in counts}
    parts.append(stacked_bars("Language mix of kept rows", langs, sorted({r["lang"] for r in kept})))
    lic = {name: dict(Counter(r["license"] for r in kept if r["source"] == name)) for name in counts}
    parts.append(stacked_bars("Licence mix of kept rows", lic, sorted({r["license"] for r in kept})))
    clusters = Counter(
        Counter(r["duplicate_of"] for r in rejects if r["reason"] == "duplicate_near").values()
    )
    parts.append(
        table(
            "Near-duplicate clusters (size = kept row + its duplicates)",
            ["cluster size", "clusters"],
            [[k + 1, v] for k, v in sorted(clusters.items())] or [["none", 0]],
        )
    )
    samples = []
    for name in counts:
        for r in [x for x in kept if x["source"] == name][:2]:
            body = r.get("text") or f"{r.get('instruction')}\n{r.get('input') or ''}\n→ {r.get('output')}"
            samples.append([name, r["lang"], body[:300]])
    parts.append(table("Sample rows", ["source", "lang", "text"], samples))
    parts.append(table("Reasons overall", ["reason", "rows"], sorted(by_reason.items())))
    parts.append(table("Stages", ["stage", "rows"], sorted(by_stage.items())))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:900px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;vertical-align:top;white-space:pre-wrap}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Build report</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(out_dir: Path) -> Path:
    from pipeline.sink.parquet import atomic_write_text

    path = out_dir / "report.html"
    atomic_write_text(path, render_report(out_dir))
    return path
