import numpy as np
import pytest
from testkit.planted import planted_pairs, planted_set

from pipeline.dedup.minhash import char_jaccard, char_signatures, estimated_jaccard
from pipeline.dedup.near import Doc, NearDupSettings, lsh_params, near_dedup, near_duplicates
from pipeline.records import instruct_row, lineage
from pipeline.text.normalize import signature_text
from schemas.recipe import NearDedupSpec


@pytest.fixture(scope="module")
def planted():
    docs = planted_set(seed=0)
    return docs, planted_pairs(docs), {d.id: i for i, d in enumerate(docs)}


def clusters(docs, dups, idx):
    cl = list(range(len(docs)))
    for d in dups:
        cl[idx[d.id]] = idx[d.duplicate_of]
    return cl


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_recall_and_precision_on_planted_near_copies(planted, lang):
    docs, pairs, idx = planted
    dups = near_duplicates([Doc(d.id, d.text, d.lang) for d in docs], NearDupSettings())
    cl = clusters(docs, dups, idx)
    high = [(i, j) for i, j, jac in pairs if jac >= 0.9 and docs[j].lang == lang]
    assert len(high) >= 80
    recall = sum(cl[i] == cl[j] for i, j in high) / len(high)
    assert recall >= 0.95
    merged = [(idx[d.id], idx[d.duplicate_of]) for d in dups if docs[idx[d.id]].lang == lang]
    true = [char_jaccard(signature_text(docs[a].text), signature_text(docs[b].text), 5) for a, b in merged]
    precision = sum(t >= 0.6 for t in true) / len(true)
    assert precision >= 0.98
    low = [(i, j) for i, j, jac in pairs if jac < 0.6 and docs[j].lang == lang]
    assert not any(cl[i] == cl[j] for i, j in low)


def test_same_result_for_any_batch_size_and_order(planted):
    docs, _, _ = planted
    items = [Doc(d.id, d.text, d.lang) for d in docs]
    a = near_duplicates(items, NearDupSettings(batch_size=4096))
    b = near_duplicates(items[::-1], NearDupSettings(batch_size=97))
    c = near_duplicates(items, NearDupSettings(batch_size=1))
    assert a == b == c  # planted pairs make no chains, so here even the order does not matter (see below)
    assert len(a) > 200


def test_keep_rule_priority_then_smaller_id():
    text = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所で泣いていた事だけは記憶している。"
    near = text.replace("薄暗い", "うす暗い")
    docs = [Doc("b", text, "ja", 0), Doc("a", near, "ja", 0), Doc("c", near + "。", "ja", 5)]
    dups = near_duplicates(docs, NearDupSettings())
    assert sorted((d.id, d.duplicate_of) for d in dups) == [("a", "c"), ("b", "c")]
    dups = near_duplicates(docs[:2], NearDupSettings())
    assert [(d.id, d.duplicate_of) for d in dups] == [("b", "a")]
    assert 0.8 <= dups[0].similarity <= 1.0


def test_signature_normalisation_keeps_voicing_and_folds_width():
    assert signature_text("である") == "である"
    assert signature_text("て゛ある") == "である"
    assert signature_text("ＡＢＣ，ｄｅｆ！") == "abcdef"
    assert signature_text("ｶﾞｷﾞ") == "ガギ"


def test_estimated_jaccard_is_unbiased_on_real_text(planted):
    docs, pairs, _ = planted
    sel = [(i, j, jac) for i, j, jac in pairs if docs[j].lang == "ja"][:60]
    a = char_signatures([docs[i].text for i, _, _ in sel], 5, 128, 0)
    b = char_signatures([docs[j].text for _, j, _ in sel], 5, 128, 0)
    err = [estimated_jaccard(a[k], b[k]) - jac for k, (_, _, jac) in enumerate(sel)]
    assert abs(np.mean(err)) < 0.02 and np.std(err) < 0.05


def test_lsh_params_match_the_known_optimum_when_weights_are_equal():
    assert lsh_params(0.8, 128, fn_weight=0.5) == (9, 13)  # as datasketch / RedPajama-V2
    b, r = lsh_params(0.8, 128)
    assert b * r <= 128 and 1 - (1 - 0.9**r) ** b > 0.99


def test_near_dedup_rows_become_rejects_with_duplicate_of_and_similarity():
    base = (
        "Photosynthesis converts light energy into chemical energy stored in glucose molecules inside plants."
    )
    rows = [
        instruct_row(lineage("s", "f.json", 0, "mit", "en"), "Explain photosynthesis.", "", base),
        instruct_row(lineage("s", "f.json", 1, "mit", "en"), "Explain photosynthesis!", "", base + " "),
        instruct_row(lineage("s", "f.json", 2, "mit", "en"), "Name a prime number.", "", "Seven is prime."),
    ]
    kept, rejects = near_dedup(rows, NearDedupSpec(), {})
    assert len(kept) == 2 and len(rejects) == 1
    r = rejects[0]
    winner = min(rows[0]["id"], rows[1]["id"])
    assert (r["stage"], r["reason"], r["duplicate_of"]) == ("dedup", "duplicate_near", winner)
    assert r["detail"].startswith("similarity=")


def test_vectorised_signature_text_rule_equals_the_python_one(planted):
    docs, _, _ = planted
    raw = [d.text for d in docs[:300]] + ["て゛ある！ＡＢＣ", "", "。、！", "x"]
    assert (
        char_signatures(raw, 5, 64, 3) == char_signatures([signature_text(t) for t in raw], 5, 64, 3)
    ).all()


@pytest.mark.parametrize("run_rows, threshold", [(65_536, 0.8), (5, 0.8), (65_536, 0.5), (7, 0.5)])
def test_batched_clustering_equals_one_comparison_at_a_time(planted, tmp_path, monkeypatch, run_rows, threshold):
    """cluster_arrays gathers each band's candidates' signatures at once (from unit files, mapped one at a
    time) and compares a head with its whole star at once; the reference reads and compares one row at a
    time. Same duplicates, same kept rows, same similarities; with RUN_ROWS 5 or 7 the runs are cut into many
    batches (and a run longer than a batch is taken alone). Thresholds: 0.8 = 102.4/128 of the permutations,
    0.5 = 64/128 exactly (a similarity equal to it joins), low enough that stars leave members for the next."""
    from pipeline.dedup import near

    base, _, _ = planted
    rng = np.random.default_rng(1)
    docs = list(base[:300])
    for d in base[:40]:  # families of 12 variants, ever more edited: large runs, many stars
        chars = list(d.text)
        for v in range(12):
            for at in rng.integers(0, len(chars), size=max(1, len(chars) * v // 40)):
                chars[at] = "xyzかきく"[int(rng.integers(0, 6))]
            docs.append(Doc(f"{d.id}-v{v}", "".join(chars), d.lang))
    docs[5:5] = [Doc("no-shingles-1", "", "ja"), Doc("no-shingles-2", "。、", "ja")]  # all-EMPTY signatures
    s = NearDupSettings(threshold=threshold)
    bands, rows = lsh_params(s.threshold, s.num_perm)
    sig = near.signatures_for([Doc(d.id, d.text, d.lang) for d in docs], s)
    n = len(docs)
    cut = [0, n // 3, n // 3 + 1, 2 * n // 3, n]  # four unit files, one of a single row
    paths, masks = [], []
    rng = np.random.default_rng(0)
    for k, (a, b) in enumerate(zip(cut[:-1], cut[1:], strict=True)):
        paths.append(tmp_path / f"u{k}.npy")
        np.save(paths[-1], sig[a:b])
        masks.append(rng.random(b - a) < 0.9 if k != 1 else np.ones(1, bool))  # some rows left out (exact dups)
    keep = np.concatenate(masks)
    ids = np.array([d.id for d in docs], "S32")[keep]
    prios = (np.arange(len(ids)) % 3).astype(np.int64)
    store = near.UnitSignatures(paths, masks, s.num_perm, rows)
    monkeypatch.setattr(near, "RUN_ROWS", run_rows)
    got = near.cluster_arrays(store, ids, prios, s.threshold, bands)
    want = near._cluster_arrays_reference(store, ids, prios, s.threshold, bands)
    for j in range(bands):  # band keys made a unit at a time: those of the whole band's block
        usable, keys = store.band_keys(j)
        whole = near._block_keys(store.band(j))
        assert np.array_equal(usable, whole[0]) and np.array_equal(keys, whole[1]) and len(usable) < store.n
    store.close()
    assert len(want[0]) >= 100
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_batched_clustering_walks_later_stars_like_the_reference():
    """One run of five documents: A and D alike, B and C alike, A unlike B; the first star (head A) joins D
    and leaves B, C for the next star (head B), which joins C. Both implementations give {A, D}, {B, C}."""
    from pipeline.dedup import near

    a = np.arange(1, 9, dtype=np.uint32)
    b = np.arange(20, 28, dtype=np.uint32)
    sig = np.stack([a, b, np.r_[b[:7], 99].astype(np.uint32), np.r_[a[:7], 98].astype(np.uint32), a + 50])

    class Store:  # every document in one band run; signatures as designed
        def band(self, j):
            return np.full((len(sig), 4), 7, np.uint32)

        def row(self, i):
            return sig[i]

        def rows_of(self, idx):
            return sig[idx]

    ids = np.array([b"a", b"b", b"c", b"d", b"e"], "S32")
    prios = np.zeros(5, np.int64)
    for fn in (near.cluster_arrays, near._cluster_arrays_reference):
        dup, of, sim = fn(Store(), ids, prios, 0.75, 1)
        assert [(ids[d], ids[o]) for d, o in zip(dup, of, strict=True)] == [(b"c", b"b"), (b"d", b"a")]
        assert sim.tolist() == [0.875, 0.875]


def test_members_joined_with_their_run_head_earlier_are_not_read_again():
    """Rows joined in an earlier band change nothing when they meet again: band 0 joins A and A' (runs {A, A'}
    and {B, C}, B unlike C); in band 1 all four share a key, and A' (joined with the run's head A) is dropped
    before signatures are read: band 1 reads A, B and C only. The result is the reference's."""
    from pipeline.dedup import near

    a = np.arange(1, 9, dtype=np.uint32)
    sig = np.stack([a, np.r_[a[:7], 99].astype(np.uint32), a + 20, a + 40])  # A, A' (7/8 alike), B, C
    read: list[list[int]] = []

    class Store:
        def band(self, j):
            return np.array([[1, 1], [1, 1], [2, 2], [2, 2]] if j == 0 else [[3, 3]] * 4, np.uint32)

        def row(self, i):
            return sig[i]

        def rows_of(self, idx):
            read.append(sorted(np.asarray(idx).tolist()))
            return sig[idx]

    ids = np.array([b"a", b"a2", b"b", b"c"], "S32")
    prios = np.zeros(4, np.int64)
    got = near.cluster_arrays(Store(), ids, prios, 0.75, 2)
    assert read[:2] == [[0, 1, 2, 3], [0, 2, 3]]  # band 0: both pairs; band 1: A' left out
    want = near._cluster_arrays_reference(Store(), ids, prios, 0.75, 2)
    assert [x.tolist() for x in got] == [x.tolist() for x in want] == [[1], [0], [0.875]]


def test_a_run_is_walked_in_rank_order():
    """A like B, B like C, A unlike C, all in one run. In row order the star around A takes B and leaves C
    alone; ranked B first, the star around B takes both. Both implementations follow ``rank``."""
    from pipeline.dedup import near

    a = np.arange(1, 9, dtype=np.uint32)
    b = np.r_[a[:6], 90, 91].astype(np.uint32)  # 6/8 like A
    c = np.r_[a[:4], 92, 93, 90, 91].astype(np.uint32)  # 6/8 like B, 4/8 like A
    sig = np.stack([a, b, c])

    class Store:
        def band(self, j):
            return np.full((3, 2), 5, np.uint32)

        def row(self, i):
            return sig[i]

        def rows_of(self, idx):
            return sig[idx]

    ids = np.array([b"a", b"b", b"c"], "S32")
    prios = np.zeros(3, np.int64)
    for fn in (near.cluster_arrays, near._cluster_arrays_reference):
        dup, of, _ = fn(Store(), ids, prios, 0.75, 1)
        assert [(ids[d], ids[o]) for d, o in zip(dup, of, strict=True)] == [(b"b", b"a")]
        dup, of, sim = fn(Store(), ids, prios, 0.75, 1, np.array([1, 0, 2]))
        assert [(ids[d], ids[o]) for d, o in zip(dup, of, strict=True)] == [(b"b", b"a"), (b"c", b"a")]
        assert sim.tolist() == [0.75, 0.5]  # each duplicate's similarity to the row its cluster keeps


def test_densified_signatures_equal_the_rule_entry_by_entry():
    """oph_signatures' vectorised densification against the rule written out for each empty bin: the first
    borrow trial whose bin holds a value, else the next filled bin to the right (documents with a few
    shingles reach that fallback); documents without shingles stay EMPTY."""
    import numpy as np

    from pipeline.dedup import minhash as M

    rng = np.random.default_rng(7)
    sizes = [0, 1, 2, 3, 5, 9, 40, 130, 600, 0, 1]
    hashes = rng.integers(0, 2**63, size=sum(sizes), dtype=np.int64).view(np.uint64) * np.uint64(2) + np.uint64(1)
    docs = np.repeat(np.arange(len(sizes)), sizes)
    perm, seed = 64, 3
    got = M.oph_signatures(hashes, docs, len(sizes), perm, seed)
    raw = np.full((len(sizes), perm), M.EMPTY, dtype=np.uint32)
    bins = (((hashes >> np.uint64(32)) * np.uint64(perm)) >> np.uint64(32)).astype(np.int64)
    for h, d, b in zip(hashes.tolist(), docs.tolist(), bins.tolist(), strict=True):
        raw[d, b] = min(raw[d, b], h & 0xFFFFFFFF)
    table = M._densify_table(perm, seed)
    fallbacks = 0
    for r in range(len(sizes)):
        for c in range(perm):
            want = raw[r, c]
            if want == M.EMPTY and sizes[r]:
                filled = [raw[r, b] for b in table[:, c] if raw[r, b] != M.EMPTY]
                if filled:
                    want = filled[0]
                else:
                    fallbacks += 1
                    want = next(raw[r, (c + k) % perm] for k in range(1, perm) if raw[r, (c + k) % perm] != M.EMPTY)
            assert got[r, c] == want, (r, c)
    assert fallbacks > 0  # the fallback ran
    assert (got[0] == M.EMPTY).all() and (got[9] == M.EMPTY).all()
