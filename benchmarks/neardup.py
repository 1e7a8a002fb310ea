"""Near-duplicate detection: ours vs datasketch, rensa and HojiChar on the same corpus and shingles.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/neardup.py --docs 25000 50000 100000 200000

Corpus: documents of 3-8 random real sentences of the samples (Japanese and English, half each), 10%
of them with a planted near-copy (1-3% character edits, a sentence added or dropped, width/punctuation
variants). It is written to benchmarks/out/ and every engine streams it from there in its own process
(one core, peak RSS from getrusage). All engines use num_perm=128, threshold 0.8 and character 5-grams of
the same normalised text (pipeline.dedup.minhash.signature_text). Peers dedup online (query, then insert),
as their docs show. Recall: planted pairs with true Jaccard >= 0.9 that end in one cluster. Precision:
reported duplicate pairs whose true Jaccard is >= 0.6.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

OUT = HERE / "out"
ENGINES = ["ours", "datasketch", "rensa", "hojichar"]
_SENT = re.compile(r"(?<=[。．.!?！？\n])\s*")


def make_corpus(n: int, seed: int = 0) -> Path:
    from testkit.planted import edit_chars, edit_sentence, edit_width, originals

    path = OUT / f"neardup-{n}-{seed}.jsonl"
    if path.exists():
        return path
    OUT.mkdir(exist_ok=True)
    rnd = random.Random(seed)
    pools = {
        lang: [s.strip() for t in texts for s in _SENT.split(t) if len(s.strip()) >= 15]
        for lang, texts in originals().items()
    }
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        i = 0
        while i < n:
            lang = "ja" if i % 2 == 0 else "en"
            sep = "" if lang == "ja" else " "
            text = sep.join(rnd.sample(pools[lang], rnd.randint(3, 8)))
            f.write(
                json.dumps(
                    {"id": f"d{i:07d}", "text": text, "lang": lang, "origin": None}, ensure_ascii=False
                )
                + "\n"
            )
            i += 1
            if i < n and rnd.random() < 0.10:
                kind = rnd.choice(["chars", "chars", "sentence", "width"])
                if kind == "chars":
                    copy = edit_chars(text, rnd)
                elif kind == "sentence":
                    copy = edit_sentence(text, sep.join(rnd.sample(pools[lang], 1)), rnd)
                else:
                    copy = edit_width(text, lang)
                rec = {"id": f"d{i:07d}", "text": copy, "lang": lang, "origin": f"d{i - 1:07d}", "edit": kind}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                i += 1
    os.replace(tmp, path)
    return path


def stream(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def shingles(text: str) -> list[str]:
    from pipeline.text.normalize import signature_text

    t = signature_text(text)
    return [t[i : i + 5] for i in range(len(t) - 4)] or ([t] if t else [])


def run_engine(engine: str, path: Path, result: Path) -> None:
    """In a child process: dedup the corpus, write {id: duplicate_of}, print seconds and peak RSS."""
    t0 = time.perf_counter()
    pairs: dict[str, str] = {}
    if engine == "ours":
        from pipeline.dedup.near import Doc, NearDupSettings, near_duplicates

        docs = (Doc(r["id"], r["text"], r["lang"]) for r in stream(path))
        for d in near_duplicates(docs, NearDupSettings(), OUT):
            pairs[d.id] = d.duplicate_of
    elif engine == "datasketch":
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=0.8, num_perm=128)
        for r in stream(path):
            m = MinHash(num_perm=128, seed=1)
            m.update_batch([s.encode() for s in shingles(r["text"])])
            found = lsh.query(m)
            if found:
                pairs[r["id"]] = min(found)
            else:
                lsh.insert(r["id"], m)
    elif engine == "rensa":
        from rensa import RMinHash, RMinHashLSH

        lsh = RMinHashLSH(threshold=0.8, num_perm=128, num_bands=16)  # it needs bands dividing num_perm
        ids = []
        for k, r in enumerate(stream(path)):
            m = RMinHash(num_perm=128, seed=42)
            m.update(shingles(r["text"]))
            found = lsh.query(m)
            ids.append(r["id"])
            if found:
                pairs[r["id"]] = ids[min(found)]
            else:
                lsh.insert(k, m)
    elif engine == "hojichar":
        from hojichar import Document
        from hojichar.filters.deduplication import GenerateDedupLSH

        from pipeline.text.normalize import signature_text

        gen = GenerateDedupLSH(num_perm=128, threshold=0.8, n_grams=5)
        owner: dict[str, str] = {}
        for r in stream(path):
            doc = gen.apply(Document(signature_text(r["text"])))
            keys = doc.extras["dedup_lsh"]
            hit = next((owner[k] for k in keys if k in owner), None)
            if hit is not None:
                pairs[r["id"]] = hit
            else:
                for k in keys:
                    owner[k] = r["id"]
    seconds = time.perf_counter() - t0
    result.write_text(json.dumps(pairs))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb}))


def evaluate(path: Path, pairs: dict[str, str]) -> dict:
    from pipeline.dedup.minhash import char_jaccard
    from pipeline.text.normalize import signature_text

    text, lang_of = {}, {}
    planted = []
    for r in stream(path):
        text[r["id"]] = r["text"]
        lang_of[r["id"]] = r["lang"]
        if r["origin"]:
            planted.append((r["origin"], r["id"], r["lang"]))
    parent = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs.items():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    out = {}
    for lang in ("ja", "en"):
        high = []
        for o, c, lg in planted:
            if lg == lang and char_jaccard(signature_text(text[o]), signature_text(text[c]), 5) >= 0.9:
                high.append((o, c))
        found = sum(find(o) == find(c) for o, c in high)
        rep = [(a, b) for a, b in pairs.items() if lang_of[a] == lang]
        true = [char_jaccard(signature_text(text[a]), signature_text(text[b]), 5) for a, b in rep]
        out[lang] = {
            "recall": found / max(len(high), 1),
            "pairs_j90": len(high),
            "precision": sum(t >= 0.6 for t in true) / max(len(true), 1),
            "reported": len(true),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, nargs="+", default=[100_000])
    ap.add_argument("--engines", nargs="+", default=ENGINES)
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "CORPUS", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_engine(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    for n in args.docs:
        path = make_corpus(n)
        print(f"\n== {n:,} documents ({path.name}), one core, num_perm=128, threshold 0.8, char 5-grams")
        print(
            f"{'engine':11s} {'docs/s':>8s} {'seconds':>8s} {'peak MB':>8s} {'recall ja':>9s} {'recall en':>9s} "
            f"{'prec ja':>8s} {'prec en':>8s}"
        )
        rows = {}
        for engine in args.engines:
            result = OUT / f"result-{engine}-{n}.json"
            cmd = ["taskset", "-c", "0", sys.executable, __file__, "--child", engine, str(path), str(result)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(f"{engine:11s} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            stats = json.loads(proc.stdout.strip().splitlines()[-1])
            q = evaluate(path, json.loads(result.read_text()))
            rows[engine] = (n / stats["seconds"], stats["rss_mb"])
            print(
                f"{engine:11s} {n / stats['seconds']:8,.0f} {stats['seconds']:8.1f} {stats['rss_mb']:8.0f} "
                f"{q['ja']['recall']:9.3f} {q['en']['recall']:9.3f} {q['ja']['precision']:8.3f} {q['en']['precision']:8.3f}"
            )
        if "ours" in rows:
            for engine, (speed, rss) in rows.items():
                if engine != "ours":
                    print(
                        f"ours / {engine}: {rows['ours'][0] / speed:.2f}x docs/s, {rows['ours'][1] / rss:.2f}x peak memory"
                    )


if __name__ == "__main__":
    main()
