"""MinHash signature speed against the batch size in characters (pipeline.dedup.near.BATCH_CHARS).

    .venv/bin/python benchmarks/signatures.py --docs 20000 --chars 2000000 500000 250000 125000

Documents: benchmarks/corpus.py's (instruction rows and paragraphs of the shipped samples), as
``record_text`` gives them to near dedup; ``--long K`` joins K of them into one document, for the
long-document case (RedPajama text). Each batch size runs ``--rounds`` times in turn on one core; the best
time of each is printed, and every size must give the same signatures (a document's signature does not
depend on its batch). The arrays of a batch take ~40 bytes a character: at 2M characters (~80 MB) every
numpy pass (n-gram hashes, the mix, the bins) streams through memory, at 250k (~10 MB) it stays in cache.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pipeline.dedup.near as near
from corpus import make_corpus  # benchmarks/corpus.py, beside this script
from pipeline.records import record_text
from pipeline.text.normalize import normalize_text
from schemas.recipe import NearDedupSpec


def documents(n: int, long: int) -> list[near.Doc]:
    texts = [normalize_text(record_text(row)) for row, _label, _lang in make_corpus(n)]
    if long > 1:
        texts = ["\n\n".join(texts[i : i + long]) for i in range(0, len(texts), long)]
    return [near.Doc(str(i), t, None) for i, t in enumerate(texts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--long", type=int, default=1, help="join this many documents into one")
    ap.add_argument("--chars", type=int, nargs="+", default=[2_000_000, 500_000, 250_000, 125_000])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    docs = documents(a.docs, a.long)
    s = near.settings_from(NearDedupSpec())
    chars = sum(len(d.text) for d in docs)
    print(f"{len(docs)} documents, {chars / 1e6:.1f}M characters; {s.num_perm} permutations, {s.ngram}-grams")
    best = dict.fromkeys(a.chars, float("inf"))
    ref = None
    for _ in range(a.rounds):
        for size in a.chars:
            near.BATCH_CHARS = size
            t = time.perf_counter()
            sig = np.concatenate([near.signatures_for(b, s) for b in near.doc_batches(docs, s.batch_size)])
            best[size] = min(best[size], time.perf_counter() - t)
            if ref is None:
                ref = sig
            assert np.array_equal(sig, ref), f"batches of {size} characters changed the signatures"
    for size, sec in best.items():
        print(f"batch {size:>9,} chars: {sec:6.3f} s, {chars / sec / 1e6:5.1f}M chars/s, {len(docs) / sec:8,.0f} docs/s")


if __name__ == "__main__":
    main()
