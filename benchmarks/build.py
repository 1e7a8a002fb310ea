"""Docs/s of each cleaning stage and of the whole cleaning on a large mixed ja/en corpus, one core.

    .venv/bin/python benchmarks/build.py --docs 100000

Stages are timed one after another over the same rows: normalise (NFKC + whitespace), language id, the
filters, exact dedup; "whole" runs CleanStage + exact_dedup as the build does. The floor is plain NFKC +
whitespace + xxhash exact dedup, measured in the same run. Also language id alone on the labelled lines
of data/samples/cjk_lines (ours vs plain langdetect).
"""

from __future__ import annotations

import argparse
import re
import time
import unicodedata
from collections import Counter

import xxhash
from corpus import SAMPLES, make_corpus

from pipeline.clean.filters import FILTERS, FilterContext
from pipeline.clean.normalize import normalize_row
from pipeline.clean.stage import CleanStage
from pipeline.dedup.exact import dedup_key, exact_dedup
from pipeline.records import is_reject, record_text
from pipeline.text.langid import detect, langdetect_lang

_WS = re.compile(r"\s+")


def floor(rows):
    seen = set()
    kept = 0
    for r in rows:
        t = _WS.sub(" ", unicodedata.normalize("NFKC", record_text(r))).strip()
        h = xxhash.xxh3_128_digest(t.encode())
        if h not in seen:
            seen.add(h)
            kept += 1
    return kept


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def langid_bench():
    lines = []
    for pair, lang in (("jpn", "ja"), ("cmn", "zh"), ("kor", "ko")):
        for line in (SAMPLES / "cjk_lines" / f"tatoeba_eng-{pair}.sample.tsv").read_text().splitlines():
            en, other = line.split("\t")[:2]
            lines += [(other, lang), (en, "en")]
    for p in (SAMPLES / "ja_prose" / "jsquad_valid_wikipedia_paragraphs.sample.txt").read_text().splitlines():
        if p.strip():
            lines.append((p, "ja"))
    rows = []
    for name, fn in (
        ("ours (script + en words + langdetect)", detect),
        ("langdetect (seeded)", langdetect_lang),
    ):
        t = time.perf_counter()
        got = [fn(x) for x, _ in lines]
        dt = time.perf_counter() - t
        acc = sum(g == y for g, (_, y) in zip(got, lines, strict=True)) / len(lines)
        zh = [g == y for g, (_, y) in zip(got, lines, strict=True) if y == "zh"]
        rows.append((name, len(lines) / dt, acc, sum(zh) / len(zh)))
    print(f"\nlanguage id on {len(lines)} labelled ja/zh/ko/en lines (data/samples/cjk_lines + ja_prose)")
    print(f"{'method':40s} {'lines/s':>10s} {'accuracy':>9s} {'zh acc':>7s}")
    for name, speed, acc, zh in rows:
        print(f"{name:40s} {speed:10,.0f} {acc:9.3f} {zh:7.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    corpus = make_corpus(args.docs, args.seed)
    rows = [r for r, _, _ in corpus]
    labels = Counter((label, lang) for _, label, lang in corpus)
    n = len(rows)
    chars = sum(len(record_text(r)) for r in rows)
    print(f"corpus: {n:,} docs, {chars / n:.0f} chars/doc on average; labels {dict(sorted(labels.items()))}")

    _, t_floor = timed(floor, rows)
    normed, t_norm = timed(lambda: [normalize_row(r) for r in rows])

    def langs():
        for r in normed:
            r["lang"] = detect(record_text(r))

    _, t_lang = timed(langs)
    ctx = FilterContext()
    per_filter = {}
    survivors = normed
    for f in FILTERS:
        t = time.perf_counter()
        survivors = [r for r in survivors if not f.check(r, ctx)]
        per_filter[f.name] = (time.perf_counter() - t, len(survivors))
    _, t_dedup = timed(exact_dedup, survivors, {})

    stage = CleanStage(ctx)
    t = time.perf_counter()
    cleaned = list(stage(rows))
    kept_rows, _ = exact_dedup([r for r in cleaned if not is_reject(r)], {})
    t_whole = time.perf_counter() - t

    print(f"\n{'stage':32s} {'docs in':>9s} {'seconds':>8s} {'docs/s':>10s}")
    print(f"{'floor: NFKC+ws+xxhash dedup':32s} {n:9,d} {t_floor:8.2f} {n / t_floor:10,.0f}")
    print(f"{'normalise (NFKC + whitespace)':32s} {n:9,d} {t_norm:8.2f} {n / t_norm:10,.0f}")
    print(f"{'language id':32s} {n:9,d} {t_lang:8.2f} {n / t_lang:10,.0f}")
    docs_in = n
    for name, (dt, left) in per_filter.items():
        print(f"{'filter ' + name:32s} {docs_in:9,d} {dt:8.2f} {docs_in / dt:10,.0f}")
        docs_in = left
    print(f"{'exact dedup':32s} {docs_in:9,d} {t_dedup:8.2f} {docs_in / t_dedup:10,.0f}")
    print(f"{'whole cleaning (build path)':32s} {n:9,d} {t_whole:8.2f} {n / t_whole:10,.0f}")
    print(f"ratio whole / floor speed: {t_floor / t_whole:.2f}")

    # A document counts as kept when its content survives: itself, or the one exact copy dedup chose.
    kept_keys = {dedup_key(r) for r in kept_rows}
    print("\nkept share by label and language (clean should be kept, the rest dropped; a planted copy")
    print("counts as kept when its content is kept once, which is what exact dedup must do)")
    for (label, lang), total in sorted(labels.items()):
        k = sum(
            1
            for r, lb, lg in corpus
            if lb == label and lg == lang and dedup_key(normalize_row(r)) in kept_keys
        )
        print(f"  {label:6s} {lang}: {k:7,d} / {total:7,d} = {k / total:.3f}")
    langid_bench()


if __name__ == "__main__":
    main()
