from pipeline.dedup.exact import exact_dedup
from pipeline.records import instruct_row, lineage, text_row


def irow(source, index, instruction, output, inp=""):
    return instruct_row(lineage(source, "f.json", index, "mit", "en"), instruction, inp, output)


def test_higher_priority_wins_then_smaller_id():
    a = irow("low", 0, "Name a colour.", "Red.")
    b = irow("high", 0, "name a  COLOUR.", "red.")  # same text after case folding and space collapsing
    c = irow("high", 1, "Name a colour.", "Red.")
    d = irow("low", 1, "Name a fruit.", "Apple.")
    kept, dups = exact_dedup([a, b, c, d], {"high": 10, "low": 0})
    winner = min(b["id"], c["id"])
    assert [r["id"] for r in kept] == [winner, d["id"]]
    assert sorted((r["id"], r["duplicate_of"]) for r in dups) == sorted(
        (x["id"], winner) for x in (a, b, c) if x["id"] != winner
    )
    assert {(r["stage"], r["reason"]) for r in dups} == {("dedup", "duplicate_exact")}


def test_field_boundaries_and_tables_matter():
    a = irow("s", 0, "ab", "c")
    b = irow("s", 1, "a", "bc")
    t = text_row(lineage("s", "t.jsonl", 0, "mit", "en"), "ab\nc")
    kept, dups = exact_dedup([a, b, t], {})
    assert len(kept) == 3 and dups == []


def test_keep_rule_does_not_depend_on_order():
    rows = [irow("s", i, "Same.", "Same.") for i in range(5)]
    k1, _ = exact_dedup(rows, {})
    k2, _ = exact_dedup(rows[::-1], {})
    assert [r["id"] for r in k1] == [r["id"] for r in k2] == [min(r["id"] for r in rows)]
