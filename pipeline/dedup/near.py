"""Near-duplicate detection: MinHash LSH over character n-grams (word n-grams on request), across sources.

Streaming and bounded in memory: signatures are computed a batch at a time and written to disk, one
file per LSH band plus one row-major file for verification; buckets are then built one band at a time,
so memory holds one band's keys (about 70 bytes a document), never the corpus or all signatures.
Candidate pairs (same bucket in some band) are verified by their estimated Jaccard similarity and joined
by union-find; in each cluster the best-ranked row (higher source priority, then smaller id) is kept and
the others are reported with the similarity to it. The result depends only on the documents, their order
in the corpus (the order a band's runs are walked in: the build passes the read order, whatever units the
rows were cut into) and the settings, not on batch sizes.

:func:`near_dedup` is the stage over build rows: rows in, (kept rows, duplicate_near rejects) out;
:func:`near_duplicates` the detector over plain documents.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.dedup.minhash import EMPTY, char_signatures, estimated_jaccard, word_signatures
from pipeline.failpoints import failpoint
from pipeline.records import Row, record_text, reject
from pipeline.text.langid import NO_SPACE_LANGS
from pipeline.text.normalize import word_tokens
from schemas.recipe import NearDedupSpec

_P = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class NearDupSettings:
    threshold: float = 0.8
    ngram: int = 5  # character n-gram size
    num_perm: int = 128
    seed: int = 0
    shingle: str = "char"  # char: character n-grams for every language; auto: word n-grams for spaced text
    word_ngram: int = 3
    batch_size: int = 2048


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    lang: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class Duplicate:
    id: str
    duplicate_of: str
    similarity: float  # estimated Jaccard similarity to the kept document


@lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int, fn_weight: float = 0.85) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising weighted false positive and negative areas.

    False negatives weigh more than false positives because every candidate pair is verified by its
    estimated similarity afterwards: a false candidate costs a comparison, a missed one is lost.
    """
    s = np.linspace(0.0, 1.0, 2001)
    below, above = s <= threshold, s >= threshold
    best, best_cost = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        r = np.arange(1, num_perm // b + 1)
        p = 1.0 - (1.0 - s[None, :] ** r[:, None]) ** b  # candidate probability per (r, similarity)
        fp = np.trapezoid(p[:, below], s[below], axis=1)
        fn = np.trapezoid(1.0 - p[:, above], s[above], axis=1)
        cost = (1 - fn_weight) * fp + fn_weight * fn
        i = int(cost.argmin())
        if cost[i] < best_cost - 1e-12:
            best, best_cost = (b, int(r[i])), float(cost[i])
    return best


class _UnionFind:
    """Union-find over row indices 0..n-1 in one array('q') (8 bytes a row, whatever the number of
    duplicates); a cluster's root is its smallest index."""

    def __init__(self, n: int) -> None:
        self.parent = array("q", range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        """The root of every row (pointer jumping, vectorised)."""
        p = np.frombuffer(self.parent, dtype=np.int64).copy()
        while True:
            q = p[p]
            if np.array_equal(q, p):
                return p
            p = q


class SignatureStore:
    """Signatures on disk: ``rows.u32`` (row-major, for verification) and ``band-XX.u32`` (band-major)."""

    def __init__(self, workdir: Path, num_perm: int, bands: int, rows: int):
        self.dir, self.num_perm, self.bands, self.rows = workdir, num_perm, bands, rows
        self.n = 0
        self._row_file = open(workdir / "rows.u32", "wb")
        self._band_files = [open(workdir / f"band-{j:02d}.u32", "wb") for j in range(bands)]

    def add(self, sig: np.ndarray) -> None:
        self._row_file.write(np.ascontiguousarray(sig).tobytes())
        for j, f in enumerate(self._band_files):
            f.write(np.ascontiguousarray(sig[:, j * self.rows : (j + 1) * self.rows]).tobytes())
        self.n += len(sig)

    def close(self) -> None:
        for f in [self._row_file, *self._band_files]:
            f.close()
        self._fd = os.open(self.dir / "rows.u32", os.O_RDONLY)

    def band(self, j: int) -> np.ndarray:
        return np.fromfile(self.dir / f"band-{j:02d}.u32", dtype=np.uint32).reshape(self.n, self.rows)

    def row(self, i: int) -> np.ndarray:
        size = self.num_perm * 4
        return np.frombuffer(os.pread(self._fd, size, i * size), dtype=np.uint32)

    def rows_of(self, idx: np.ndarray) -> np.ndarray:
        """The signatures of rows ``idx`` (any order), as one (len(idx), num_perm) array."""
        return np.stack([self.row(int(i)) for i in idx]) if len(idx) else np.empty((0, self.num_perm), np.uint32)

    def release(self) -> None:
        if hasattr(self, "_fd"):
            os.close(self._fd)


# a signature batch also ends at this many characters: its numpy arrays take about 40 bytes a character
# at their peak (~10 MB here), and their passes (n-gram hashes, the mix, the bins) run from the CPU's
# caches; 2M characters (~80 MB) took 1.4-1.6x as long for the same signatures (benchmarks/signatures.py;
# in a 400k build's units: 0.44 -> 0.27 s on a long-document file, 0.43 -> 0.31 s on an instruction file)
BATCH_CHARS = 250_000


def doc_batches(docs: Iterable[Doc], size: int) -> Iterator[list[Doc]]:
    """Batches of ``size`` documents, or fewer when they reach BATCH_CHARS characters (a document's
    signature does not depend on its batch)."""
    batch: list[Doc] = []
    chars = 0
    for d in docs:
        batch.append(d)
        chars += len(d.text)
        if len(batch) == size or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def signatures_for(batch: list[Doc], s: NearDupSettings) -> np.ndarray:
    """(len(batch), num_perm) signatures; char or word shingles chosen per document by ``s.shingle``."""
    words = [s.shingle == "auto" and (d.lang or "") not in NO_SPACE_LANGS for d in batch]
    sig = np.empty((len(batch), s.num_perm), dtype=np.uint32)
    char_idx = [i for i, w in enumerate(words) if not w]
    word_idx = [i for i, w in enumerate(words) if w]
    if char_idx:
        sig[char_idx] = char_signatures([batch[i].text for i in char_idx], s.ngram, s.num_perm, s.seed)
    if word_idx:
        toks = [word_tokens(batch[i].text) for i in word_idx]
        sig[word_idx] = word_signatures(toks, s.word_ngram, s.num_perm, s.seed)
    return sig


def near_duplicates(
    docs: Iterable[Doc], settings: NearDupSettings, workdir: Path | None = None
) -> list[Duplicate]:
    """The near-duplicate documents to drop, each with the id of the document kept in its cluster."""
    s = settings
    bands, rows = lsh_params(s.threshold, s.num_perm)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="neardup-") as tmp:
        store = SignatureStore(Path(tmp), s.num_perm, bands, rows)
        ids: list[np.ndarray] = []
        prios: list[np.ndarray] = []
        for batch in doc_batches(docs, s.batch_size):
            store.add(signatures_for(batch, s))
            ids.append(np.array([d.id for d in batch], dtype="S32"))
            prios.append(np.array([d.priority for d in batch], dtype=np.int64))
        store.close()
        try:
            if not ids:
                return []
            id_arr, prio_arr = np.concatenate(ids), np.concatenate(prios)
            return cluster(store, id_arr, prio_arr, s.threshold, bands)
        finally:
            store.release()


class UnitSignatures:
    """Signatures already on disk, one row-major (n, num_perm) uint32 ``.npy`` file per unit (computed
    by the workers, pipeline/resume/units.py), of which ``masks`` selects the documents to compare.
    Memory: one band's columns of the selected documents at a time (a unit's file is read whole, one unit
    at a time, and dropped); a row is read with pread, and a batch of rows (``rows_of``) from each unit's
    file mapped only while its rows are gathered, so no more than one unit's file is ever mapped (mapped
    pages count in the process's RSS: all files kept mapped would be the whole signature set)."""

    OPEN_FILES = 64  # file descriptors kept open for row reads (least recently used closed)

    def __init__(self, paths: list[Path], masks: list[np.ndarray], num_perm: int, rows: int):
        self.rows, self.num_perm, self.paths = rows, num_perm, paths
        self.index = [np.nonzero(m)[0] for m in masks]
        self.offsets = [_npy_data_offset(p) if len(i) else 0 for p, i in zip(paths, self.index, strict=True)]
        sizes = np.array([len(i) for i in self.index], dtype=np.int64)
        self.starts = np.r_[0, np.cumsum(sizes)]
        self.n = int(self.starts[-1])
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._sizes: dict[int, int] = {}  # rows in each unit's file

    def band(self, j: int) -> np.ndarray:
        cols = slice(j * self.rows, (j + 1) * self.rows)
        parts = [np.load(p)[i, cols] for p, i in zip(self.paths, self.index, strict=True) if len(i)]
        return np.concatenate(parts) if parts else np.empty((0, self.rows), np.uint32)

    def band_keys(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """``_block_keys(self.band(j))`` made a unit at a time, so that only the keys are kept (8 bytes a
        row) and never the whole band's block (4 bytes a row per band row: 36 at 128 permutations)."""
        cols = slice(j * self.rows, (j + 1) * self.rows)
        usable, keys = [np.empty(0, np.int64)], [np.empty(0, np.uint64)]
        for p, i, start in zip(self.paths, self.index, self.starts[:-1].tolist(), strict=True):
            if len(i):
                u, k = _block_keys(np.load(p)[i, cols])
                usable.append(u + start)
                keys.append(k)
        return np.concatenate(usable), np.concatenate(keys)

    def row(self, i: int) -> np.ndarray:
        u = int(np.searchsorted(self.starts, i, side="right")) - 1
        r = int(self.index[u][i - self.starts[u]])
        size = self.num_perm * 4
        return np.frombuffer(os.pread(self._fd(u), size, self.offsets[u] + r * size), dtype=np.uint32)

    def rows_of(self, idx: np.ndarray) -> np.ndarray:
        """The signatures of rows ``idx`` (any order), as one (len(idx), num_perm) array: each unit's file
        mapped in turn while its rows are gathered, then unmapped (pages are mapped for one unit at a time,
        at most its file), instead of a read per row."""
        out = np.empty((len(idx), self.num_perm), np.uint32)
        if not len(idx):
            return out
        units = np.searchsorted(self.starts, idx, side="right") - 1
        order = np.argsort(units, kind="stable")
        bounds = np.r_[0, np.nonzero(np.diff(units[order]))[0] + 1, len(order)]
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            at = order[a:b]
            u = int(units[at[0]])
            local = self.index[u][idx[at] - self.starts[u]]
            path, offset = self.paths[u], self.offsets[u]
            if u not in self._sizes:
                self._sizes[u] = (path.stat().st_size - offset) // (self.num_perm * 4)
            mapped = np.memmap(path, dtype=np.uint32, mode="r", offset=offset, shape=(self._sizes[u], self.num_perm))
            out[at] = mapped[local]
            del mapped
        return out

    def _fd(self, u: int) -> int:
        fd = self._fds.get(u)
        if fd is not None:
            self._fds.move_to_end(u)
            return fd
        if len(self._fds) >= self.OPEN_FILES:
            os.close(self._fds.popitem(last=False)[1])
        fd = self._fds[u] = os.open(self.paths[u], os.O_RDONLY)
        return fd

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])


def _npy_data_offset(path: Path) -> int:
    """Where the array data of a C-ordered uint32 ``.npy`` file starts."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _shape, fortran, dtype = read(fh)
        if fortran or dtype != np.uint32:
            raise ValueError(f"{path}: not a C-ordered uint32 signature array")
        return fh.tell()


def _block_keys(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the rows of a band's block that have shingles, their band keys)."""
    usable = np.nonzero(~(block == EMPTY).all(axis=1))[0]
    return usable, _band_keys(block[usable])


def _band_keys(block: np.ndarray) -> np.ndarray:
    key = np.zeros(len(block), dtype=np.uint64)
    for c in range(block.shape[1]):
        key *= _P
        key += block[:, c].astype(np.uint64)
    return key


def cluster(store, ids: np.ndarray, prios: np.ndarray, threshold: float, bands: int) -> list[Duplicate]:
    """Near duplicates among the documents of ``store`` (anything with ``band(j)`` -> (n, rows) and
    ``row(i)`` -> signature), given their ids (S32) and source priorities in the store's order."""
    dup, of, sim = cluster_arrays(store, ids, prios, threshold, bands)
    return [Duplicate(ids[d].decode(), ids[w].decode(), float(x)) for d, w, x in zip(dup, of, sim, strict=True)]


RUN_ROWS = 65_536  # candidate rows whose signatures are gathered at once (32 MB at 128 permutations)


def _band_runs(store, j: int, rank: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Band ``j``'s runs of equal keys: (starts, ends, rows), run k being rows[starts[k]:ends[k]], its
    members in ``rank`` order (rank[i]: row i's place in the corpus; None: the store's row order); None when
    no two documents share a key. Documents without shingles never match."""
    failpoint("near-band")
    usable, keys = store.band_keys(j) if hasattr(store, "band_keys") else _block_keys(store.band(j))
    order = np.argsort(keys, kind="stable")
    keys = keys[order]  # each array replaced by its sorted copy at once: 8 bytes a row fewer held
    usable = usable[order]
    del order
    same = np.nonzero(keys[1:] == keys[:-1])[0]
    if not len(same):
        return None
    starts = same[np.r_[True, np.diff(same) > 1]]
    ends = np.searchsorted(keys, keys[starts], side="right")
    if rank is not None:  # each run's members put in rank order, in place (only the runs' members move)
        run_of, at = _run_positions(starts, ends)
        members = usable[at]
        usable[at] = members[np.lexsort((rank[members], run_of))]
    return starts, ends, usable


def _run_positions(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the run of each run member, its position), for runs k = [starts[k], ends[k]) laid in order."""
    sizes = ends - starts
    run_of = np.repeat(np.arange(len(starts)), sizes)
    return run_of, np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(len(run_of))


def _kept_of(uf: _UnionFind, ids: np.ndarray, prios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The keep rule: each cluster keeps its member of highest priority, then smallest id; returns (the
    other members, the row each keeps), grouped by cluster."""
    root = uf.roots()
    inside = np.nonzero(np.bincount(root, minlength=len(ids))[root] > 1)[0]
    order = inside[np.lexsort((ids[inside], -prios[inside], root[inside]))]
    first = np.r_[True, root[order][1:] != root[order][:-1]] if len(order) else np.empty(0, bool)
    winner = np.empty(len(ids), np.int64)
    winner[root[order[first]]] = order[first]
    dup = order[~first]
    return dup, winner[root[dup]]


STAR_BLOCK = 8192  # signatures compared with their run's head at once (a 4 MB copy at 128 permutations)


def _first_star_sims(sigs: np.ndarray, sizes: list[int]) -> list[float]:
    """For runs of ``sizes`` rows laid back to back in ``sigs``, each row's similarity to its run's first row
    (the first star of every run, which is most of the comparisons: most runs are pairs), computed in
    blocks of STAR_BLOCK rows instead of one numpy operation per run; the same values as the per-star
    ``count_nonzero(...) / perms``."""
    perms = sigs.shape[1]
    heads = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
    out = np.empty(len(sigs))
    for a in range(0, len(sigs), STAR_BLOCK):
        b = min(a + STAR_BLOCK, len(sigs))
        out[a:b] = np.count_nonzero(sigs[a:b] == sigs[heads[a:b]], axis=1) / perms
    return out.tolist()


def _open_runs(uf: _UnionFind, starts: np.ndarray, ends: np.ndarray, members: np.ndarray):
    """A band's runs (run k = members[starts[k]:ends[k]]) less the members the union-find has joined with
    their run's first member already, as (starts, ends, members) of the runs left with two members or more.
    The first star of a run (head: its first member) skips such a member (``find(m) == find(head)``) and
    leaves it out of later stars, so it changes nothing; rows joined at the band's start stay joined. So
    they are dropped at once, in numpy, before their signatures are read: in later bands most of a run's
    members are such, and each cost a Python step."""
    run_of, at = _run_positions(starts, ends)
    root = uf.roots()
    rows = members[at]
    head = members[starts][run_of]
    keep = (at == starts[run_of]) | (root[rows] != root[head])
    left = np.bincount(run_of[keep], minlength=len(starts))
    keep &= left[run_of] >= 2
    rows = rows[keep]
    left = left[left >= 2]
    ends = np.cumsum(left)
    return ends - left, ends, rows


def cluster_arrays(
    store, ids: np.ndarray, prios: np.ndarray, threshold: float, bands: int, rank: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cluster`` as arrays: (row of each duplicate, row of the document it keeps, similarity), in
    the duplicates' id order. Each band's runs of equal keys are taken in order, RUN_ROWS candidates at a
    time: their signatures are gathered in one read (``store.rows_of``) and each star's head is compared
    with all its members in one numpy operation; the union-find then walks the members exactly as one
    comparison at a time would (:func:`_cluster_arrays_reference`, the same result). A run's members are
    walked in ``rank`` order (the corpus's read order, so that the stars, and the result, do not depend on how
    the rows were cut into units), or in the store's order when ``rank`` is None. Memory: the bands' keys,
    the union-find, O(rows) as numpy arrays, and RUN_ROWS signatures."""
    uf = _UnionFind(len(ids))
    find, union, parent = uf.find, uf.union, uf.parent
    for j in range(bands):
        runs = _band_runs(store, j, rank)
        if runs is None:
            continue
        starts, ends, members_of = _open_runs(uf, *runs)
        first = 0
        while first < len(starts):
            last = first + 1  # runs first..last-1, RUN_ROWS candidates at most (a longer run alone)
            total = ends[first] - starts[first]
            while last < len(starts) and total + ends[last] - starts[last] <= RUN_ROWS:
                total += ends[last] - starts[last]
                last += 1
            spans = [(int(a), int(b)) for a, b in zip(starts[first:last], ends[first:last], strict=True)]
            rows = np.concatenate([members_of[a:b] for a, b in spans])
            sigs = store.rows_of(rows)
            perms = sigs.shape[1]
            firsts = _first_star_sims(sigs, [b - a for a, b in spans])
            at, listed = 0, rows.tolist()
            for a, b in spans:
                size = b - a
                if size == 2:  # a pair (most runs): joined when similar enough (a no-op when joined already)
                    if firsts[at + 1] >= threshold:
                        union(listed[at], listed[at + 1])
                    at += 2
                    continue
                run = listed[at : at + size]
                sig = sigs[at : at + size]
                first = firsts[at + 1 : at + size]
                at += size
                pos = list(range(size))
                while len(pos) > 1:  # star around the first member; the unmatched form the next star
                    h, rest = pos[0], []
                    # the head's root, found once: only this star's unions change it (union keeps the
                    # smaller root), so it is followed here; a member in the head's cluster is skipped
                    top = find(run[h])
                    if first is not None:  # the run's first star: computed for every run at once
                        sims, first = first, None
                    else:
                        sims = (np.count_nonzero(sig[pos[1:]] == sig[h], axis=1) / perms).tolist()
                    for p, sim in zip(pos[1:], sims, strict=True):
                        r = find(run[p])
                        if r == top:
                            continue
                        if sim >= threshold:  # union(head, member), its roots known
                            if r < top:
                                parent[top], top = r, r
                            else:
                                parent[r] = top
                        else:
                            rest.append(p)
                    pos = rest
            first = last
    dup, of = _kept_of(uf, ids, prios)
    sims = np.empty(len(dup))
    for a in range(0, len(dup), RUN_ROWS // 2):  # similarity to the kept document, RUN_ROWS rows at a time
        d, w = store.rows_of(dup[a : a + RUN_ROWS // 2]), store.rows_of(of[a : a + RUN_ROWS // 2])
        sims[a : a + len(d)] = [round(x, 4) for x in (np.count_nonzero(d == w, axis=1) / d.shape[1]).tolist()]
    by_id = np.argsort(ids[dup], kind="stable")
    return dup[by_id], of[by_id], sims[by_id]


def _cluster_arrays_reference(
    store, ids: np.ndarray, prios: np.ndarray, threshold: float, bands: int, rank: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`cluster_arrays` one signature read and one comparison at a time: the reference the tests
    compare it with."""
    uf = _UnionFind(len(ids))
    sig = store.row  # read as needed: a band's candidates can be most of the corpus, so nothing is cached
    for j in range(bands):
        runs = _band_runs(store, j, rank)
        for start, end in zip(*runs[:2], strict=True) if runs is not None else ():
            members = runs[2][start:end].tolist()
            while len(members) > 1:  # star around the first member; the unmatched form the next star
                head, rest = members[0], []
                head_sig = sig(head)
                for m in members[1:]:
                    if uf.find(m) == uf.find(head):
                        continue
                    if estimated_jaccard(head_sig, sig(m)) >= threshold:
                        uf.union(head, m)
                    else:
                        rest.append(m)
                members = rest
    dup, of = _kept_of(uf, ids, prios)
    sims = np.empty(len(dup))
    head, head_sig = -1, None
    for k, (m, w) in enumerate(zip(dup.tolist(), of.tolist(), strict=True)):  # grouped by cluster
        if w != head:
            head, head_sig = w, store.row(w)
        sims[k] = round(estimated_jaccard(head_sig, store.row(m)), 4)
    by_id = np.argsort(ids[dup], kind="stable")
    return dup[by_id], of[by_id], sims[by_id]


def settings_from(spec: NearDedupSpec) -> NearDupSettings:
    return NearDupSettings(
        threshold=spec.threshold,
        ngram=spec.ngram,
        num_perm=spec.num_perm,
        seed=spec.seed,
        shingle=spec.shingle,
        word_ngram=spec.word_ngram,
    )


def near_dedup(
    rows: Iterable[Row], spec: NearDedupSpec, priorities: dict[str, int], workdir: Path | None = None
) -> tuple[list[Row], list[Row]]:
    """(kept rows, duplicate_near rejects), both in input order; signatures spill into ``workdir``."""
    rows = list(rows)
    docs = (Doc(r["id"], record_text(r), r.get("lang"), priorities.get(r["source"], 0)) for r in rows)
    dups = {d.id: d for d in near_duplicates(docs, settings_from(spec), workdir)}
    kept, rejects = [], []
    for r in rows:
        d = dups.get(r["id"])
        if d is None:
            kept.append(r)
            continue
        detail = f"similarity={d.similarity:.4f}"
        rejects.append(reject(r, "dedup", "duplicate_near", detail, duplicate_of=d.duplicate_of))
    return kept, rejects
