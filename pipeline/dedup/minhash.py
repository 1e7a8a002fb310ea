"""MinHash signatures over character or word n-grams, vectorised over batches of documents with numpy.

Shingling is where the peers spend their time (a Python loop per n-gram), so it is done here for a
whole batch at once: the batch's text is encoded once to UTF-32, every n-gram gets a 64-bit polynomial
hash from ``n`` vector multiply-adds, and a murmur-style finaliser mixes it. Signatures use one-permutation
hashing (Li et al. 2012) with optimal densification (Shrivastava 2017): one hash per shingle (not one per
permutation), the top bits choose one of ``num_perm`` bins and each bin keeps its smallest value; an
empty bin borrows the value of a bin picked by a fixed, seeded sequence, the same for every document, so
equal bins still mean equal minima. The fraction of equal bins estimates the Jaccard similarity.
"""

from __future__ import annotations

import numpy as np

from pipeline.text.normalize import KEEP, TABLE_SIZE, folded

EMPTY = np.uint32(0xFFFFFFFF)
_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_P = np.uint64(0x100000001B3)  # FNV prime: the polynomial's base
_S33 = np.uint64(33)
_S32 = np.uint64(32)


def _fmix(h: np.ndarray, seed: int) -> np.ndarray:
    h ^= np.uint64(seed * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
    h ^= h >> _S33
    h *= _C1
    h ^= h >> _S33
    h *= _C2
    h ^= h >> _S33
    return h


def ngram_hashes(units: np.ndarray, lengths: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n-gram of every document in a batch.

    ``units`` holds the batch's documents back to back (code points, or word hashes), ``lengths`` their
    lengths. Returns (hashes, document index of each hash). A document shorter than ``n`` gives one
    shingle, its whole self; an empty one gives none.
    """
    units = units.astype(np.uint64, copy=False)
    total = len(units)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    m = total - n + 1
    if m > 0:
        h = units[:m].copy()
        for k in range(1, n):
            h *= _P
            h += units[k : k + m]
        # the last n-1 positions of each document start n-grams that cross into the next one
        valid = np.ones(m, dtype=bool)
        ends = starts + lengths
        for k in range(1, n):
            pos = ends - k
            valid[pos[(pos >= starts) & (pos < m)]] = False
        per_doc = np.maximum(lengths - n + 1, 0)
        hashes = h[valid]
        docs = np.repeat(np.arange(len(lengths), dtype=np.int64), per_doc)
    else:
        hashes, docs = np.empty(0, np.uint64), np.empty(0, np.int64)
    short = np.nonzero((lengths > 0) & (lengths < n))[0]
    if len(short):  # whole-document shingles for documents shorter than n
        extra = np.empty(len(short), dtype=np.uint64)
        for i, d in enumerate(short):
            h = np.uint64(len(units[starts[d] : starts[d] + lengths[d]]))
            for u in units[starts[d] : starts[d] + lengths[d]]:
                h = h * _P + u
            extra[i] = h
        hashes = np.concatenate([hashes, extra])
        docs = np.concatenate([docs, short])
    return _fmix(hashes, seed), docs


def _densify_table(num_perm: int, seed: int, trials: int = 64) -> np.ndarray:
    """trials x num_perm table of the bins an empty bin borrows from, in order (same for every document)."""
    rng = np.random.default_rng(seed + 0x5EED)
    return rng.integers(0, num_perm, size=(trials, num_perm), dtype=np.int64)


def oph_signatures(hashes: np.ndarray, docs: np.ndarray, n_docs: int, num_perm: int, seed: int) -> np.ndarray:
    """(n_docs, num_perm) uint32 signatures; rows of documents without shingles are all EMPTY."""
    sig = np.full(n_docs * num_perm, EMPTY, dtype=np.uint32)
    if len(hashes):
        bins = ((hashes >> _S32) * np.uint64(num_perm)) >> _S32  # top 32 bits -> a bin, without bias
        vals = (hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        np.minimum.at(sig, docs * num_perm + bins.astype(np.int64), vals)
    sig = sig.reshape(n_docs, num_perm)
    empty = sig == EMPTY
    has_any = ~empty.all(axis=1)
    # the empty bins of documents with shingles, as flat positions (row * num_perm + bin): one-dimensional
    # gathers and scatters cost less than (row, bin) pairs
    pos = np.flatnonzero(empty & has_any[:, None])
    if not len(pos):
        return sig
    flat = sig.reshape(-1)
    original = flat.copy()
    cols = pos % num_perm
    base = pos - cols
    for borrow in _densify_table(num_perm, seed):
        src = original[base + borrow[cols]]
        ok = src != EMPTY
        flat[pos[ok]] = src[ok]
        miss = ~ok
        pos, base, cols = pos[miss], base[miss], cols[miss]
        if not len(pos):
            return sig
    original = original.reshape(n_docs, num_perm)
    rows = pos // num_perm
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):  # a document with very few shingles
        for k in range(1, num_perm):
            v = original[r, (c + k) % num_perm]
            if v != EMPTY:
                sig[r, c] = v
                break
    return sig


def char_signatures(texts: list[str], n: int, num_perm: int, seed: int) -> np.ndarray:
    """Signatures over character n-grams of :func:`pipeline.text.normalize.signature_text` of each text, vectorised.

    Folding (NFKC, case) is per text; dropping punctuation and spaces is one table lookup for the batch.
    """
    folded_texts = [folded(t) for t in texts]
    lengths = np.fromiter(map(len, folded_texts), dtype=np.int64, count=len(texts))
    units = np.frombuffer("".join(folded_texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    keep = KEEP[np.minimum(units, TABLE_SIZE - 1)] & (units < TABLE_SIZE)
    # the characters each document keeps, from a running count at the documents' ends (not a document
    # index per character: 8 bytes each)
    kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
    ends = np.cumsum(lengths)
    lengths = kept[ends] - kept[ends - lengths]
    units = units[keep]
    hashes, docs = ngram_hashes(units, lengths, n, seed)
    return oph_signatures(hashes, docs, len(texts), num_perm, seed)


def word_signatures(token_lists: list[list[str]], n: int, num_perm: int, seed: int) -> np.ndarray:
    """Signatures over word n-grams; words are hashed with a seeded 64-bit hash (xxh3)."""
    import xxhash

    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = [w for toks in token_lists for w in toks]
    units = np.fromiter(
        (xxhash.xxh3_64_intdigest(w.encode(), seed) for w in flat), dtype=np.uint64, count=len(flat)
    )
    hashes, docs = ngram_hashes(units, lengths, n, seed)
    return oph_signatures(hashes, docs, len(token_lists), num_perm, seed)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / a.shape[-1]


def char_jaccard(a: str, b: str, n: int) -> float:
    """Exact Jaccard similarity of the character n-gram sets (reference for tests and benchmarks)."""
    sa = {a[i : i + n] for i in range(max(len(a) - n + 1, 1))} if a else set()
    sb = {b[i : i + n] for i in range(max(len(b) - n + 1, 1))} if b else set()
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)
