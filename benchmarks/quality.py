"""Recall and precision of the instruction-pair rules and of PII masking on a labelled set built from the
shipped samples (tests/support/testkit/quality.py: the real rows untouched, plus planted defects of every
class on copies of real rows).

    .venv/bin/python benchmarks/quality.py            # tables
    .venv/bin/python benchmarks/quality.py --show 50  # also the untouched rows the rules drop, to hand-check

Per class: the share of planted rows rejected for exactly that reason (repairs: the share that came out
equal to the original). Untouched rows: the share kept, per language. PII: the share of planted values
masked with the right type, and the share of untouched rows (and near-misses: dates, prices, versions,
arXiv ids) in which anything was masked.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

from testkit.quality import planted, planted_pii

from pipeline.clean.filters import FilterContext
from pipeline.clean.stage import CleanStage
from pipeline.records import instruct_row, is_reject, lineage
from schemas.recipe import CleanSpec


def as_row(i: int, x) -> dict:
    return instruct_row(lineage("bench", "quality.json", i, "mit"), x.instruction, x.input, x.output)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=0, help="print this many untouched rows that were dropped")
    args = ap.parse_args()
    stage = CleanStage(FilterContext(CleanSpec(), frozenset({"ja", "en"})))
    rows = planted(args.seed)
    t = time.perf_counter()
    outs = [stage.clean_one(as_row(i, x)) for i, x in enumerate(rows)]
    dt = time.perf_counter() - t
    print(f"labelled set: {len(rows):,} rows ({len(rows) / dt:,.0f} rows/s through CleanStage)\n")

    caught: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    dropped_clean = []
    for x, out in zip(rows, outs, strict=True):
        key = (x.label, x.lang)
        caught[key][1] += 1
        if x.label == "clean":
            if is_reject(out):
                dropped_clean.append((x, out))
            else:
                caught[key][0] += 1
        elif x.label.startswith("repair:"):
            ok = not is_reject(out) and all(out[k] == v for k, v in x.expect.items())
            caught[key][0] += ok
        else:
            caught[key][0] += is_reject(out) and out["reason"] == x.label
    print("| class | lang | planted | caught | recall |")
    print("|---|---|---|---|---|")
    for (label, lang), (k, n) in sorted(caught.items()):
        if label != "clean":
            print(f"| {label} | {lang} | {n} | {k} | {k / n:.3f} |")
    print("\n| untouched rows | lang | rows | kept | kept share |")
    print("|---|---|---|---|---|")
    for (label, lang), (k, n) in sorted(caught.items()):
        if label == "clean":
            print(f"| real sample rows | {lang} | {n} | {k} | {k / n:.3f} |")
    reasons = Counter((x.lang, out["reason"]) for x, out in dropped_clean)
    print(f"\nuntouched rows dropped, by reason: {dict(sorted(reasons.items()))}")
    for x, out in dropped_clean[: args.show]:
        print(f"- [{x.origin}] {out['reason']}: {out['detail']}")
        print(f"    instruction={x.instruction[:120]!r}")
        print(f"    input={x.input[:60]!r} output={x.output[:100]!r}")

    # PII
    pii = planted_pii(args.seed)
    hit: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    false_near = []
    for i, (x, kind, value) in enumerate(pii):
        out = stage.clean_one(as_row(i, x))
        text = out["output"] if not is_reject(out) else None
        if text is None:  # rejected by a rule: judge the masking on the stage's repair alone
            text = stage.repair(as_row(i, x))["output"]
        if kind is None:
            hit[("near-miss survives", x.lang)][1] += 1
            ok = "<" not in text.replace("<nooutput>", "") or value in text
            hit[("near-miss survives", x.lang)][0] += ok and value in text
            if value not in text:
                false_near.append((value, text[-80:]))
        else:
            hit[(kind, x.lang)][1] += 1
            hit[(kind, x.lang)][0] += value not in text and f"<{kind}>" in text
    print("\n| PII type | lang | planted | masked | recall |")
    print("|---|---|---|---|---|")
    for (kind, lang), (k, n) in sorted(hit.items()):
        print(f"| {kind} | {lang} | {n} | {k} | {k / n:.3f} |")
    for value, tail in false_near[:10]:
        print(f"  near-miss masked: {value!r} -> ...{tail!r}")
    untouched = [x for x in rows if x.label == "clean"]
    masked = []
    for i, x in enumerate(untouched):
        r = stage.repair(as_row(i, x))
        if stage.pii_found:
            masked.append((x, r))
    print(f"\nfalse masks: {len(masked)} of {len(untouched)} untouched rows = {len(masked) / len(untouched):.4f}")
    for x, r in masked[:10]:
        print(f"  [{x.origin}] {r['output'][:120]!r}")


if __name__ == "__main__":
    main()
