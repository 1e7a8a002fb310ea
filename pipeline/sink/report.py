"""DIR/report.html: one self-contained page (inline SVG, no script, no network) that shows what a build
did: records per source (kept and each reject reason), reasons, lengths, languages, licences, near-duplicate
cluster sizes and a few sample rows per source."""

from __future__ import annotations

import html
import json
import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.columns import DATA_TABLES, ROLES

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
            svg.append(f'<text x="{i * w}" y="80" font-size="9">{_short(2**b)}</text>')
        svg.append("</svg>")
        out.append(
            f'<figure class="hist"><figcaption>{html.escape(name)} ({len(values)} rows)</figcaption>'
            + "".join(svg)
            + "</figure>"
        )
    return "\n".join(out)


def _short(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 else str(n)


def table(title: str, header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_printable(str(c)))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def groups_first_seen(columns: list[pa.Array]) -> list[tuple[tuple, np.ndarray]]:
    """The distinct value tuples of ``columns`` (equal-length Arrow arrays) in the order they first occur,
    each with its row positions in order: a Counter updated group after group, or a list extended so,
    ends as one updated row after row would."""
    n = len(columns[0])
    code = np.zeros(n, dtype=np.int64)
    values = []
    for col in columns:  # one integer code per row: the columns' dictionary indices mixed
        enc = pc.dictionary_encode(col)  # a null (the lang of a row that had none) is a value of its own
        idx = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy(zero_copy_only=False).astype(np.int64)
        values.append([*enc.dictionary.to_pylist(), None])
        code = code * (len(enc.dictionary) + 1) + idx
    uniq, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rows_of = np.argsort(inverse.reshape(-1), kind="stable")
    bounds = np.searchsorted(inverse.reshape(-1)[rows_of], np.arange(len(uniq) + 1))
    out = []
    for g in order.tolist():
        rows = rows_of[bounds[g] : bounds[g + 1]]
        out.append((tuple(v[int(i)] for v, i in zip(values, _unmix(int(uniq[g]), [len(v) for v in values]), strict=True)), rows))
    return out


def _unmix(code: int, sizes: list[int]) -> list[int]:
    """The per-column indices that :func:`groups_first_seen` mixed into ``code``."""
    out = []
    for size in reversed(sizes):
        code, i = divmod(code, size)
        out.append(i)
    return out[::-1]


def _text(r: dict) -> str:
    if r.get("messages") is not None:
        return "\n".join(m["content"] for m in r["messages"] if m["content"])
    return r.get("text") or "\n".join(x for x in (r.get("instruction"), r.get("input"), r.get("output")) if x)


def _dialogue(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def tokenizer_of(recipe) -> tuple[str, str] | None:
    """(where to load it, its name in the recipe) of the tokenizer a recipe names for the report:
    output.report_tokenizer, else train.model; a path relative to the recipe when that exists, else the
    name as given (a hub id)."""
    name = recipe.output.report_tokenizer or (recipe.train.model if recipe.train else None)
    if not name:
        return None
    local = recipe.resolve(name)
    return (str(local) if local.exists() else name), name


def _token_counter(tokenizer: tuple[str, str] | None):
    """(len(tokens) of texts, or None; a note when the tokenizer could not be loaded)."""
    if not tokenizer:
        return None, "no tokenizer: set output.report_tokenizer or train.model"
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(tokenizer[0])
    except (OSError, ValueError) as err:  # a report never fails a build: the page says why
        return None, f"tokenizer {tokenizer[1]} could not be loaded: {str(err).splitlines()[0]}"
    return (lambda texts: [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]), None


def _quantiles(values) -> list[int]:
    """min, median (upper), p90 and max of a sequence of ints (a list or an array('q'))."""
    if not len(values):
        return [0, 0, 0, 0]
    v = np.sort(np.asarray(values, dtype=np.int64))
    return [int(v[0]), int(v[len(v) // 2]), int(v[min(len(v) - 1, int(len(v) * 0.9))]), int(v[-1])]


def _ints():
    return array("q")  # 8 bytes a value, not a Python int object and a list slot


_TOKEN_BATCH = 1024  # texts per tokenizer call


class _Part:
    """Statistics of one (table, split) of kept rows, in the order they were written."""

    def __init__(self) -> None:
        self.chars: dict[str, array] = defaultdict(_ints)
        self.tokens: dict[str, array] = defaultdict(_ints)
        self.pending: list[tuple[str, str]] = []  # (source (lang), text) waiting for the tokenizer
        self.samples: dict[str, list[dict]] = defaultdict(list)
        self.languages: dict[str, Counter] = defaultdict(Counter)
        self.licenses: dict[str, Counter] = defaultdict(Counter)


class ReportStats:
    """The report's figures, gathered row by row as a build writes its shards (so nothing is read back).
    Memory: one length per kept row (and one token count), the first rows of each source, counters."""

    def __init__(self, tokenizer: tuple[str, str] | None = None, near_clusters: Counter | None = None) -> None:
        self.tokenizer = tokenizer
        # the cluster table, when the caller has it (a build: its near dedup units counted it); else the
        # near duplicates are counted per kept id as they come (near_of)
        self.near_clusters = near_clusters
        self.count_tokens, self.token_note = _token_counter(tokenizer)
        self.parts: dict[tuple[str, str], _Part] = {}
        self.rejects: Counter = Counter()  # (stage, reason) -> rows
        self.examples: dict[tuple[str, str], list[dict]] = defaultdict(list)  # two rejects per rule
        self.near_of: Counter = Counter()  # kept row id -> its near duplicates
        self.turns: dict[str, array] = defaultdict(_ints)  # source -> turns of each kept conversation
        self.roles: dict[str, Counter] = defaultdict(Counter)  # source -> turns per role

    def add_kept(self, table: str, split: str, r: dict) -> None:
        part = self.parts.get((table, split))
        if part is None:
            part = self.parts[(table, split)] = _Part()
        key = f"{r['source']} ({r['lang']})"
        text = _text(r)
        part.chars[key].append(len(text))
        if self.count_tokens:
            part.pending.append((key, text))
            if len(part.pending) == _TOKEN_BATCH:
                self._tokenize(part)
        name = r["source"]
        if r.get("messages") is not None:
            self.turns[name].append(len(r["messages"]))
            self.roles[name].update(m["role"] for m in r["messages"])
        if len(part.samples[name]) < 2:
            body = (
                _dialogue(r["messages"]) if r.get("messages") is not None
                else r.get("text") or f"{r.get('instruction')}\n{r.get('input') or ''}\n→ {r.get('output')}"
            )
            part.samples[name].append({"source": name, "lang": r["lang"], "text": body[:300]})
        part.languages[name][r["lang"]] += 1
        part.licenses[name][r["license"]] += 1

    def columnar(self, table: str) -> bool:
        """Whether :meth:`add_kept_table` serves ``table``'s rows: no tokenizer (token counts are asked row
        batch by row batch) and no conversations (turns and roles are per message)."""
        return self.count_tokens is None and table in ("instruct", "text")

    def add_kept_table(self, table: str, t: pa.Table, validation: np.ndarray | None = None) -> None:
        """:meth:`add_kept` for every row of ``t`` (in order; :meth:`columnar` tables), each in the split
        ``validation`` (a bool a row; None: all train) gives it: lengths and counts by column, each key's
        first rows first, as the row by row path leaves them. The text columns are measured where they
        are, never copied."""
        if not t.num_rows:
            return
        if table == "text":
            chars = pc.fill_null(pc.utf8_length(t.column("text")), 0).to_numpy(zero_copy_only=False)
        else:  # the fields joined by newlines, the empty ones left out
            lens = [pc.utf8_length(t.column(c)).to_numpy(zero_copy_only=False) for c in ("instruction", "input", "output")]
            filled = sum((x > 0).astype(np.int64) for x in lens)
            chars = sum(lens) + np.maximum(filled - 1, 0)
        chars = np.asarray(chars, dtype=np.int64)
        lineage = t.select(["source", "lang", "license"])
        for split in ("train", "validation"):
            if validation is None:
                at = np.arange(t.num_rows) if split == "train" else np.empty(0, np.int64)
            else:
                at = np.flatnonzero(~validation if split == "train" else validation)
            if len(at):
                self._add_kept_rows(table, split, t, lineage.take(at), chars[at], at)

    def _add_kept_rows(self, table: str, split: str, t: pa.Table, lineage: pa.Table, chars: np.ndarray, at: np.ndarray):
        """add_kept_table's work for one split: its rows ``at`` of ``t``, their lineage columns and lengths."""
        part = self.parts.get((table, split))
        if part is None:
            part = self.parts[(table, split)] = _Part()
        source, lang, lic = (lineage.column(c).combine_chunks() for c in ("source", "lang", "license"))
        for (name, code), rows in groups_first_seen([source, lang]):  # part.chars, keyed "source (lang)"
            part.chars[f"{name} ({code})"].frombytes(chars[rows].tobytes())
            part.languages[name][code] += len(rows)
        for (name,), rows in groups_first_seen([source]):
            have = part.samples[name]
            for i in at[rows[: max(0, 2 - len(have))]].tolist():
                r = t.slice(i, 1).to_pylist()[0]
                body = r.get("text") or f"{r.get('instruction')}\n{r.get('input') or ''}\n→ {r.get('output')}"
                have.append({"source": name, "lang": r["lang"], "text": body[:300]})
        for (name, code), rows in groups_first_seen([source, lic]):
            part.licenses[name][code] += len(rows)

    def _tokenize(self, part: _Part) -> None:
        if part.pending:
            counts = self.count_tokens([t for _, t in part.pending])
            for (key, _), n in zip(part.pending, counts, strict=True):
                part.tokens[key].append(n)
            part.pending = []

    def add_reject(self, r: dict, record: Callable[[], str | None] | None = None) -> None:
        """Count one reject; ``record`` gives its record when ``r`` has none (asked for the examples only)."""
        key = (r["stage"], r["reason"])
        self.rejects[key] += 1
        if r["stage"] != "dedup" and len(self.examples[key]) < 2:
            self.examples[key].append(
                {
                    "source": r["source"],
                    "detail": _printable(r.get("detail") or ""),
                    "record": _record_snippet(r.get("record") if record is None else record()),
                }
            )
        if r["reason"] == "duplicate_near" and self.near_clusters is None:
            self.near_of[r["duplicate_of"]] += 1

    def add_rejects_table(self, t: pa.Table) -> bool:
        """:meth:`add_reject` for every row of ``t`` (rejects, in order) by column, the same counts and
        examples in the same order; False (nothing done) when near duplicates are counted per kept row
        here (no cluster table given), which stays row by row."""
        if self.near_clusters is None:
            return False
        if not t.num_rows:
            return True
        stage, reason = t.column("stage").combine_chunks(), t.column("reason").combine_chunks()
        for (st, rs), rows in groups_first_seen([stage, reason]):
            key = (st, rs)
            self.rejects[key] += len(rows)
            if st == "dedup":
                continue
            have = self.examples[key]
            for i in rows[: max(0, 2 - len(have))].tolist():
                r = t.slice(i, 1).select(["source", "detail", "record"]).to_pylist()[0]
                have.append(
                    {"source": r["source"], "detail": _printable(r["detail"] or ""), "record": _record_snippet(r["record"])}
                )
        return True

    def data(self, manifest: dict) -> dict:
        """Every table of the report, as plain rows (the HTML page and the Prefect artifacts use these)."""
        counts = manifest["counts"]
        order = [(t, sp) for t in DATA_TABLES for sp in ("train", "validation") if (t, sp) in self.parts]
        parts = [self.parts[k] for k in order]
        chars: dict[str, array] = defaultdict(_ints)
        tokens: dict[str, array] = defaultdict(_ints)
        languages: dict[str, Counter] = defaultdict(Counter)
        licenses: dict[str, Counter] = defaultdict(Counter)
        for part in parts:
            self._tokenize(part)
            for k, v in part.chars.items():
                chars[k] += v
            for k, v in part.tokens.items():
                tokens[k] += v
            for name, c in part.languages.items():
                languages[name].update(c)
            for name, c in part.licenses.items():
                licenses[name].update(c)
        samples = []
        for name in counts:
            samples += [x for part in parts for x in part.samples.get(name, [])][:2]
        lengths = []
        for key in sorted(chars):
            c, t = _quantiles(chars[key]), _quantiles(tokens.get(key, []))
            row = {"source (lang)": key, "rows": len(chars[key])}
            row.update({f"chars {q}": v for q, v in zip(("min", "median", "p90", "max"), c, strict=True)})
            if key in tokens:
                row.update({f"tokens {q}": v for q, v in zip(("min", "median", "p90", "max"), t, strict=True)})
            lengths.append(row)
        clusters = self.near_clusters if self.near_clusters is not None else Counter(self.near_of.values())
        conversations = [
            {
                "source": name,
                "conversations": len(turns),
                **{f"turns {q}": v for q, v in zip(("min", "median", "p90", "max"), _quantiles(turns), strict=True)},
                **{role: self.roles[name].get(role, 0) for role in ROLES},
            }
            for name, turns in sorted(self.turns.items())
        ]
        extra = {"conversations": conversations} if conversations else {}  # builds without chat: as before
        return {
            "manifest": manifest,
            "counts": [
                {
                    "source": name,
                    "read": c["read"],
                    "kept": c["kept"],
                    "rejected": sum(c["rejected"].values()),
                    "reasons": ", ".join(f"{k} {v}" for k, v in sorted(c["rejected"].items())),
                }
                for name, c in counts.items()
            ],
            "flow": {name: {"kept": c["kept"], **c["rejected"]} for name, c in counts.items()},
            "reasons": sorted({r for c in counts.values() for r in c["rejected"]}),
            "rejects": [{"stage": st, "reason": rs, "rows": n} for (st, rs), n in sorted(self.rejects.items())],
            "chars": dict(sorted(chars.items())),
            "tokens": dict(sorted(tokens.items())),
            "tokenizer": self.tokenizer[1] if self.tokenizer else None,
            "token_note": self.token_note,
            "lengths": lengths,
            "languages": {name: dict(languages.get(name, {})) for name in counts},
            "licenses": {name: dict(licenses.get(name, {})) for name in counts},
            "clusters": [{"cluster size": k + 1, "clusters": v} for k, v in sorted(clusters.items())],
            "samples": samples,
            "quality": [
                {"stage": st, "reason": rs, "rows": self.rejects[(st, rs)], **ex}
                for (st, rs), exs in sorted(self.examples.items())
                for ex in exs
            ],
            "repairs": [
                {"source": name, "kind": k, "rows": n}
                for name, c in manifest.get("stages", {}).items()
                for k, n in sorted(c.items())
                if k.startswith(("pii:", "repair:"))
            ],
            **extra,
        }


def report_data(out_dir: Path, tokenizer: tuple[str, str] | None = None) -> dict:
    """The report's tables of a finished build, from its shards (read a shard at a time)."""
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    stats = ReportStats(tokenizer)
    cols = {"instruct": ["source", "lang", "license", "instruction", "input", "output"],
            "text": ["source", "lang", "license", "text"],
            "chat": ["source", "lang", "license", "messages"],
            "rejects": ["source", "reason", "duplicate_of", "stage", "detail", "record"]}
    for s in manifest["shards"]:
        names = set(pq.read_schema(out_dir / s["path"]).names)
        columns = [c for c in cols[s["table"]] if c in names]
        for batch in pq.ParquetFile(out_dir / s["path"]).iter_batches(columns=columns):
            for r in batch.to_pylist():
                if s["table"] == "rejects":
                    stats.add_reject(r)
                else:
                    stats.add_kept(s["table"], s["split"], r)
    return stats.data(manifest)


def _printable(s: str) -> str:
    """``s`` with lone surrogates (a reject keeps its input verbatim) written as escapes: the page is UTF-8."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _record_snippet(record) -> str:
    """The start of a reject's original record, for the report (its text fields, not its JSON)."""
    return _printable(_snippet(record))


def _snippet(record) -> str:
    if not record:
        return "(not kept)"
    try:
        r = json.loads(record)
    except (TypeError, ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return str(record)[:200]
    if not isinstance(r, dict):
        return str(r)[:200]
    if r.get("text"):
        return str(r["text"])[:200]
    if isinstance(r.get("messages"), list) and all(isinstance(m, dict) for m in r["messages"]):
        return _dialogue([{"role": m.get("role"), "content": m.get("content")} for m in r["messages"]])[:200]
    body = "\n".join(str(r[k]) for k in ("instruction", "input", "output") if r.get(k))
    return (body or json.dumps(r, ensure_ascii=False))[:200]


def _mix_rows(mix: dict[str, dict[str, int]]) -> list[dict]:
    return [{"source": name, **dict(sorted(v.items()))} for name, v in mix.items()]


def artifact_tables(data: dict) -> dict[str, list[dict]]:
    """The report's tables as Prefect table artifacts take them: key suffix -> rows."""
    return {
        "counts": data["counts"],
        "rejects": data["rejects"],
        "lengths": data["lengths"],
        "languages": _mix_rows(data["languages"]),
        "licenses": _mix_rows(data["licenses"]),
        "near-duplicate-clusters": data["clusters"],
        "samples": data["samples"],
        "quality": data["quality"],
        "repairs": data["repairs"],
        **({"conversations": data["conversations"]} if data.get("conversations") else {}),
    }


def render_report(out_dir: Path, tokenizer: tuple[str, str] | None = None, data: dict | None = None) -> str:
    data = data or report_data(out_dir, tokenizer)
    manifest = data["manifest"]
    parts = [
        f"<h1>Build report: {html.escape(manifest['name'])}</h1>",
        f"<p>recipe sha256 {manifest['recipe_sha256'][:16]}…, {len(manifest['shards'])} shards, schema {manifest['schema_version']}</p>",
        stacked_bars(
            "Records per source: kept and rejected by reason", data["flow"], ["kept", *data["reasons"]]
        ),
        table(
            "Rejects by stage and reason",
            ["stage", "reason", "rows"],
            [[r["stage"], r["reason"], r["rows"]] for r in data["rejects"]],
        ),
        histogram("Length in characters per source and language (log2 bins)", data["chars"]),
    ]
    if data["tokens"]:
        parts.append(
            histogram(
                f"Length in tokens ({data['tokenizer']}) per source and language (log2 bins)", data["tokens"]
            )
        )
    else:
        parts.append(
            "<h2>Length in tokens</h2><p>no tokenizer: set output.report_tokenizer or train.model</p>"
        )
    if data["lengths"]:
        header = list(data["lengths"][0])
        parts.append(
            table("Length summary", header, [[r.get(h, "") for h in header] for r in data["lengths"]])
        )
    if data.get("conversations"):
        header = list(data["conversations"][0])
        parts.append(
            table(
                "Conversations: turns per conversation and turns per role",
                header,
                [[r[h] for h in header] for r in data["conversations"]],
            )
        )
    langs = sorted({k for v in data["languages"].values() for k in v})
    parts.append(stacked_bars("Language mix of kept rows", data["languages"], langs))
    lics = sorted({k for v in data["licenses"].values() for k in v})
    parts.append(stacked_bars("Licence mix of kept rows", data["licenses"], lics))
    parts.append(
        table(
            "Near-duplicate clusters (size = kept row + its duplicates)",
            ["cluster size", "clusters"],
            [[r["cluster size"], r["clusters"]] for r in data["clusters"]] or [["none", 0]],
        )
    )
    parts.append(
        table(
            "Quality: rejects per rule, two examples each (duplicates are in the clusters table)",
            ["stage", "reason", "rows", "source", "detail", "record"],
            [[r["stage"], r["reason"], r["rows"], r["source"], r["detail"], r["record"]] for r in data["quality"]]
            or [["none", "", 0, "", "", ""]],
        )
    )
    parts.append(
        table(
            "Quality: repairs and PII masked per type (rows)",
            ["source", "kind", "rows"],
            [[r["source"], r["kind"], r["rows"]] for r in data["repairs"]] or [["none", "", 0]],
        )
    )
    parts.append(
        table(
            "Sample rows",
            ["source", "lang", "text"],
            [[r["source"], r["lang"], r["text"]] for r in data["samples"]],
        )
    )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:900px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;vertical-align:top;white-space:pre-wrap}"
        "figure.hist{display:inline-block;margin:0 1.5em 1em 0;vertical-align:top}"
        "figcaption{font-size:12px;font-weight:bold;margin-bottom:4px}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Build report</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(out_dir: Path, tokenizer: tuple[str, str] | None = None, data: dict | None = None) -> Path:
    from pipeline.sink.parquet import atomic_write_text

    path = out_dir / "report.html"
    atomic_write_text(path, render_report(out_dir, tokenizer, data))
    return path
