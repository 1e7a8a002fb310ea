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
    assert a == b == c
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
