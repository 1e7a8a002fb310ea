"""The streaming build's memory bounds, on real sample rows: shard row groups cut by bytes of text (the
same bytes however the rows arrive), write ranges sized by bytes, the duplicate map as numpy columns,
signature batches cut by characters (same signatures)."""

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import samples_copy

from pipeline.dedup.near import Doc, NearDupSettings, doc_batches, near_duplicates, signatures_for
from pipeline.records import chat_row, lineage, text_row
from pipeline.resume import assemble
from pipeline.resume.assemble import Dropped, Duplicates, fixed_width, id_ranges
from pipeline.sink import parquet
from pipeline.sink.parquet import ShardStream, row_bytes, sha256_of
from schemas.columns import TABLE_SCHEMAS

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT / "data/samples/redpajama_format/wikipedia_sample.jsonl"


def wiki_rows() -> list[dict]:
    rows = []
    for i, line in enumerate(WIKI.read_text(encoding="utf-8").splitlines()):
        rec = json.loads(line)
        rows.append(text_row(lineage("wiki", WIKI.name, i, "cc-by-sa-4.0", "en"), rec["text"]))
    return sorted(rows, key=lambda r: r["id"])


def write(tmp: Path, rows: list[dict], pieces: int) -> Path:
    schema = TABLE_SCHEMAS["text"]
    stream = ShardStream(tmp, "text", "train", len(rows), schema, 10_000)
    table = pa.Table.from_pylist(rows, schema=schema)
    at = 0
    while at < len(rows):
        stream.add_table(table.slice(at, pieces))
        at += pieces
    [shard] = stream.close()
    return tmp / shard.path


def test_row_groups_are_cut_by_bytes_of_text_and_the_file_does_not_depend_on_arrival(tmp_path, monkeypatch):
    rows = wiki_rows()
    sizes = [sum(len(v.encode()) for v in r.values() if isinstance(v, str)) for r in rows]
    limit = 40_000
    monkeypatch.setattr(parquet, "ROW_GROUP_BYTES", limit)
    whole = write(tmp_path / "a", rows, len(rows))
    bits = write(tmp_path / "b", rows, 7)
    ones = write(tmp_path / "c", rows, 1)
    assert sha256_of(whole) == sha256_of(bits) == sha256_of(ones)
    # the groups the rule gives: fill while the next row fits, a row over the limit alone
    expect, group, used = [], 0, 0
    for s in sizes:
        if group and used + s > limit:
            expect.append(group)
            group, used = 0, 0
        group, used = group + 1, used + s
    expect.append(group)
    md = pq.ParquetFile(whole).metadata
    assert [md.row_group(g).num_rows for g in range(md.num_row_groups)] == expect
    assert len(expect) > 5 and sum(expect) == len(rows) == 30
    assert pq.read_table(whole).to_pylist() == rows


def test_a_group_past_the_dictionary_limit_is_the_same_bytes_in_any_chunking(tmp_path):
    # over 1 MB of distinct text in one group: Parquet's dictionary falls back to plain pages at a point
    # that depends on the write batches, so the writer combines a group's chunks first
    rows = []
    for k in range(4):
        for r in wiki_rows():
            lin = lineage("wiki", WIKI.name, r["source_index"] + 100 * k, "cc-by-sa-4.0", "en")
            rows.append(text_row(lin, f"{r['text']} ({k})"))
    rows.sort(key=lambda r: r["id"])
    assert sum(len(r["text"].encode()) for r in rows) > 1 << 20
    assert sha256_of(write(tmp_path / "a", rows, len(rows))) == sha256_of(write(tmp_path / "b", rows, 7))


def test_row_bytes_counts_strings_and_the_turns_of_a_conversation():
    lin = lineage("chat", "c.jsonl", 0, "mit", "ja")
    row = chat_row(lin, [{"role": "user", "content": "こんにちは"}, {"role": "assistant", "content": "はい"}])
    table = pa.Table.from_pylist([row, row], schema=TABLE_SCHEMAS["chat"])
    strings = sum(len(v.encode()) for v in row.values() if isinstance(v, str))
    turns = sum(len(x.encode()) for x in ("user", "こんにちは", "assistant", "はい"))
    assert row_bytes(table).tolist() == [strings + turns] * 2


def test_write_ranges_are_sized_by_rows_or_bytes_whichever_needs_more():
    assert id_ranges(10) == [(None, None)]
    assert len(id_ranges(assemble.PART_ROWS * 3)) == 3
    ranges = id_ranges(10, nbytes=assemble.PART_BYTES * 4 + 1)
    assert len(ranges) == 5
    assert ranges[0][0] is None and ranges[-1][1] is None
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_the_duplicate_map_answers_like_a_dict():
    rng = np.random.default_rng(0)
    ids = [f"{x:032x}" for x in rng.integers(0, 2**62, 500)]
    of = [f"{x:032x}" for x in rng.integers(0, 2**62, 500)]
    sim = [None if i % 3 else 0.8 + i / 10_000 for i in range(500)]
    d = Dropped(
        np.array(ids, "S32"), np.array(of, "S32"), np.array([np.nan if s is None else s for s in sim]),
        np.array([s is not None for s in sim]),
    )
    expect = {i: ("duplicate_exact" if s is None else "duplicate_near", o, s) for i, o, s in zip(ids, of, sim, strict=True)}
    assert len(d) == 500
    assert all(d.found(i) == expect[i] for i in ids)
    others = [f"{x:032x}" for x in rng.integers(0, 2**62, 200)]
    probe = np.array(ids[:100] + others, "S32")
    assert d.mask(probe).tolist() == [True] * 100 + [i in expect for i in others]
    lo, hi = sorted(ids)[100], sorted(ids)[300]
    assert d.ids_between(lo[:8], hi[:8]).to_pylist() == [i for i in sorted(ids) if lo[:8] <= i < hi[:8]]
    assert d.ids_between(None, None).to_pylist() == sorted(ids)
    assert Dropped(np.empty(0, "S32"), np.empty(0, "S32"), np.empty(0), np.empty(0, bool)).mask(probe).sum() == 0


def save_duplicates(work, ids: list[str], of: list[str], sim: list, tables: list[str]) -> dict[str, list[str]]:
    """The duplicates as dedup units the way exact and near dedup store them (id order, id statistics):
    those with a similarity in a near unit, the others in two exact buckets."""
    rows = sorted(zip(ids, of, sim, tables, strict=True))
    units = {"exact": [[r for r in rows if r[2] is None][k::2] for k in range(2)], "near": [[r for r in rows if r[2] is not None]]}
    passes = {}
    for stage, parts in units.items():
        passes[stage] = []
        for k, part in enumerate(parts):
            cols = list(zip(*part, strict=True)) if part else [(), (), (), ()]
            table = pa.table(
                {
                    "id": pa.array(cols[0], pa.string()),
                    "duplicate_of": pa.array(cols[1], pa.string()),
                    "similarity": pa.array(cols[2], pa.float64()),
                    "table": pa.array(cols[3], pa.string()),
                }
            )
            work.save_tables(stage, f"{stage}{k}", {"duplicates": table}, {"key": f"{stage}{k}"})
            passes[stage].append(f"{stage}{k}")
    return passes


def test_duplicates_read_by_id_range_answer_like_the_whole_map(tmp_path, monkeypatch):
    from pipeline.resume.store import UnitStore
    from pipeline.sink.split import split_of

    monkeypatch.setattr("pipeline.resume.store.UNIT_ROW_GROUP", 16)  # many row groups: ranges skip most
    rng = np.random.default_rng(1)
    ids = [f"{x:032x}" for x in rng.integers(0, 2**62, 700)]
    of = [f"{x:032x}" for x in rng.integers(0, 2**62, 700)]
    sim = [None if i % 3 else 0.8 + i / 10_000 for i in range(700)]
    tables = ["instruct" if i % 5 else "text" for i in range(700)]
    work = UnitStore(tmp_path / "out")
    gone = Duplicates(work, save_duplicates(work, ids, of, sim, tables))
    expect = {i: ("duplicate_exact" if s is None else "duplicate_near", o, s) for i, o, s in zip(ids, of, sim, strict=True)}
    assert len(gone) == 700
    seen = []
    for lo, hi in id_ranges(700 * 8):  # 171 ranges, most holding a few duplicates or none
        part = gone.between(lo, hi)
        got = part.ids_between(None, None).to_pylist()
        assert got == sorted(i for i in ids if (lo is None or i >= lo) and (hi is None or i < hi))
        assert all(part.found(i) == expect[i] for i in got)
        seen += got
    assert seen == sorted(ids)
    for table in ("instruct", "text", "chat"):
        want = Counter(split_of(i, 0.3, 7) for i, t in zip(ids, tables, strict=True) if t == table)
        assert gone.split_counts(table, 0.3, 7) == want
    assert len(Duplicates(work, {"exact": [], "near": []})) == 0


def test_fixed_width_columns_are_the_arrays_python_values_give():
    ids = [r["id"] for r in wiki_rows()]
    col = pa.chunked_array([pa.array(ids[:7]), pa.array(ids[7:]).slice(1)])  # a chunk that starts mid-buffer
    got = fixed_width(col, 32)
    assert got.dtype == np.dtype("S32") and got.tolist() == [i.encode() for i in ids[:7] + ids[8:]]
    keys = pa.array([bytes([i]) * 15 + b"\0" for i in range(6)], pa.binary(16)).slice(2)  # a trailing NUL byte
    assert fixed_width(keys, 16).tobytes() == np.array(keys.to_pylist(), "S16").tobytes()
    # other lengths and nulls take the Python path: the same array np.array gives
    assert fixed_width(pa.array(["abc", "de"]), 3).tolist() == [b"abc", b"de"]
    assert fixed_width(pa.array(["ab", None]).slice(0, 1), 2).tolist() == [b"ab"]
    assert fixed_width(pa.chunked_array([], pa.string()), 32).shape == (0,)


def test_duplicate_rejects_by_column_equal_the_row_by_row_reference():
    from pipeline.clean.filters import FilterContext
    from pipeline.clean.stage import CleanStage
    from pipeline.records import is_reject
    from pipeline.resume.store import _UNIT_SCHEMAS, _to_arrow, rows_of
    from pipeline.sources import SourceFile, read_file
    from schemas.recipe import SourceSpec

    def cleaned(kind, rel):
        path = ROOT / "data/samples" / rel
        spec = SourceSpec(name=kind, kind=kind, path=rel, license="cc-by-4.0")
        rows = read_file(SourceFile(kind, path, path.name, rel), spec, ROOT)
        return [r for r in CleanStage(FilterContext())(rows) if not is_reject(r)]

    tables = {
        "instruct": cleaned("alpaca", "japanese_alpaca/alpaca_data_ja.sample.json"),
        "chat": cleaned("sharegpt", "sharegpt/fastchat_dummy_conversation.sample.json"),
        "text": cleaned("redpajama", "redpajama_format/wikipedia_sample.jsonl"),
    }
    from collections import Counter

    kinds = Counter()  # records from the original fields and from the row's own, by table
    for name, rows in tables.items():
        table = _to_arrow(rows, _UNIT_SCHEMAS[name])
        ids = table.column("id").to_pylist()
        near = np.arange(len(ids)) % 2 == 0  # every other one a near duplicate, the rest exact
        gone = Dropped(
            np.array(ids, "S32"), np.array(ids[1:] + ids[:1], "S32"),
            np.where(near, 0.5 + np.arange(len(ids)) / (4 * len(ids)), np.nan), near,
        )
        by_column = assemble.duplicate_rejects(table, gone)
        assert by_column.schema == TABLE_SCHEMAS["rejects"]
        reference = [assemble._duplicate(r, gone.found(r["id"])) for r in rows_of(table)]
        assert by_column.to_pylist() == reference, name
        kinds.update(("original" if r.get("_original") is not None else "own", name) for r in rows)
    assert kinds[("original", "instruct")] and kinds[("own", "instruct")] and kinds[("own", "chat")]


def test_a_unit_converted_in_chunks_is_the_file_of_one_conversion_and_its_rows_are_handed_over(tmp_path, monkeypatch):
    """UnitStore.save turns a unit's rows into Arrow TO_ARROW_ROWS at a time and frees each row once
    converted (the caller's list is emptied): the stored files are the bytes one whole conversion gives,
    and they give the rows back."""
    from pipeline.clean.filters import FilterContext
    from pipeline.clean.stage import CleanStage
    from pipeline.records import table_of
    from pipeline.resume import store
    from pipeline.resume.store import UnitStore, rows_of
    from pipeline.sources import SourceFile, read_file
    from schemas.recipe import SourceSpec

    rel = "japanese_alpaca/alpaca_data_ja.sample.json"
    path = ROOT / "data/samples" / rel
    spec = SourceSpec(name="alpaca", kind="alpaca", path=rel, license="cc-by-4.0")
    rows = list(CleanStage(FilterContext())(read_file(SourceFile("alpaca", path, path.name, rel), spec, ROOT)))
    by_table = Counter(table_of(r) for r in rows)
    assert by_table["instruct"] > 20 and by_table["rejects"] > 0
    assert any(r.get("_original") is not None for r in rows)  # rows whose original fields are kept too

    def unit(chunk_rows: int, name: str) -> Path:
        monkeypatch.setattr(store, "TO_ARROW_ROWS", chunk_rows)
        given = [dict(r) for r in rows]
        work = UnitStore(tmp_path / name)
        work.save("clean", "k", given, {"key": "k"})
        assert given == []  # handed over
        return work.unit_path("clean", "k")

    chunked, whole = unit(7, "chunked"), unit(1 << 20, "whole")
    for table in ("instruct", "rejects"):
        assert (chunked / f"{table}.parquet").read_bytes() == (whole / f"{table}.parquet").read_bytes()
        back = rows_of(pq.read_table(chunked / f"{table}.parquet"))
        assert back == sorted((r for r in rows if table_of(r) == table), key=lambda r: r["id"])


def test_json_records_in_arrow_equal_to_json():
    """A duplicate's record made from its own fields in Arrow is to_json's text: quotes, backslashes, every
    control character (\\n and the like, the rest as \\u00XX), DEL, U+2028, emoji, empty and null values."""
    import json
    import random

    from pipeline.records import json_records, json_strings, to_json

    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x80)] + ["あ", "\u2028", "😀", "é"]
    values = ["", 'a"b\\c', "x\ny\r\tz\b\f", "\x00\x01\x1f\x7f", None, "\\n", '""']
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    column = pa.array(values, pa.string())
    assert json_strings(column).to_pylist() == [json.dumps(v, ensure_ascii=False) for v in values]
    plain = pa.array(["plain text"] * len(values), pa.string())  # no control characters: the fast path
    assert json_strings(plain).to_pylist() == ['"plain text"'] * len(values)
    # a replacement runs only for the bytes a column's buffers hold: some escapes, slices and chunks
    assert json_strings(pa.array(["a\nb", 'c"d', None], pa.string())).to_pylist() == ['"a\\nb"', '"c\\"d"', "null"]
    chunked = pa.chunked_array([column.slice(3, 4), column.slice(0, 2)])
    assert json_strings(chunked).to_pylist() == [json.dumps(v, ensure_ascii=False) for v in values[3:7] + values[0:2]]
    table = pa.table({"text": column, "meta": pa.array(values[::-1], pa.string()), "input": plain})
    assert json_records(table).to_pylist() == [to_json(r) for r in table.to_pylist()]
    assert json_records(table.append_column("n", pa.array(range(len(values))))) is None  # not all strings


def test_copied_rows_are_the_rows_in_buffers_of_their_own():
    """id_range's copy of a run of rows: the same rows as a take, whatever the chunks, and no buffer shared
    with the table it came from (a slice would keep a decoded row group alive)."""
    from pipeline.resume.store import copied_rows

    texts = [f"row {i} " + "あ" * (i % 7) for i in range(50)]
    whole = pa.table({"id": [f"{i:032x}" for i in range(50)], "text": texts, "n": list(range(50))})
    chunked = pa.Table.from_batches(whole.to_batches(max_chunksize=16))
    for t in (whole, chunked):
        for a, b in [(0, 50), (3, 40), (16, 33), (49, 50), (7, 7)]:
            got = copied_rows(t, a, b)
            assert got.schema == t.schema and got.num_rows == b - a
            assert got.equals(t.take(pa.array(np.arange(a, b, dtype=np.int64))))
            assert all(c.num_chunks == 1 for c in got.columns)
            if a < b:
                source = [(buf.address, buf.address + buf.size) for c in t.columns for ch in c.chunks for buf in ch.buffers() if buf]
                mine = [buf.address for c in got.columns for buf in c.chunk(0).buffers() if buf]
                assert not any(lo <= x < hi for x in mine for lo, hi in source)


def test_signature_batches_end_at_a_character_budget_with_the_same_signatures(monkeypatch):
    docs = [Doc(r["id"], r["text"], "en") for r in wiki_rows()]
    s = NearDupSettings()
    monkeypatch.setattr("pipeline.dedup.near.BATCH_CHARS", 20_000)
    batches = list(doc_batches(docs, s.batch_size))
    assert sum(map(len, batches)) == len(docs) and len(batches) > 5
    assert all(sum(len(d.text) for d in b[:-1]) < 20_000 for b in batches)
    small = np.concatenate([signatures_for(b, s) for b in batches])
    assert np.array_equal(small, signatures_for(docs, s))
    assert near_duplicates(docs, s) == near_duplicates(docs, NearDupSettings(batch_size=4096))


ALPACA = ROOT / "data/samples/alpaca_en/alpaca_data_cleaned.sample.json"


def test_a_json_array_is_read_an_element_at_a_time_with_the_same_records(tmp_path, monkeypatch):
    from pipeline.sources import _io
    from pipeline.sources._io import iter_document_elements

    expect = json.loads(ALPACA.read_text(encoding="utf-8"))
    whole = list(iter_document_elements(ALPACA))
    # a read window of 7 bytes (elements, strings, numbers and multi-byte characters cut anywhere) and a
    # document limit far below the file: an array never needs the whole file
    monkeypatch.setattr(_io, "_CHUNK", 7)
    monkeypatch.setattr(_io, "DOCUMENT_LIMIT", 1000)
    assert ALPACA.stat().st_size > 10_000
    assert list(iter_document_elements(ALPACA)) == whole == expect
    odd = tmp_path / "odd.json"
    odd.write_bytes(b"\xef\xbb\xbf \n[ 12345 , -0.5e3,\r\n\"\xe3\x81\x82\xe3\x81\x84\" ,{\"a\": [1, {\"b\": null}]}, true]\n ")
    assert list(iter_document_elements(odd)) == [12345, -500.0, "あい", {"a": [1, {"b": None}]}, True]
    empty = tmp_path / "empty.json"
    empty.write_text(" [ ] ")
    assert list(iter_document_elements(empty)) == []


def test_a_json_array_that_breaks_is_the_error_json_loads_gives(tmp_path, monkeypatch):
    from pipeline.errors import InputFileError
    from pipeline.sources import _io
    from pipeline.sources._io import iter_document_elements

    monkeypatch.setattr(_io, "_CHUNK", 5)
    for text in ['[{"a": 1},', '[{"a": 1},]', '[{"a": 1}] x', '[{"a": 1} {"b": 2}]', '[1, 2', '[{"a": 1}, tru]']:
        path = tmp_path / "bad.json"
        path.write_text(text)
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            want = f"not valid JSON: {err}"
        got = []
        try:
            for x in iter_document_elements(path):
                got.append(x)
        except InputFileError as err:
            assert str(err).endswith(want), (text, str(err))
        else:
            raise AssertionError(f"{text!r} was read: {got}")
    # an array over the document limit that breaks late: the error names the last good element
    monkeypatch.setattr(_io, "DOCUMENT_LIMIT", 10)
    path.write_text('[{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4} {"e": 5}]')
    got = []
    with pytest.raises(InputFileError, match="not valid JSON after element 3$"):
        for x in iter_document_elements(path):
            got.append(x)
    assert got == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]


def test_signatures_computed_while_cleaning_equal_those_read_back_from_the_unit(tmp_path):
    """clean_file signs the units it cleans from the rows in memory; sig_unit signs a unit read back from
    disk (a unit found finished): the same array, for every table (instruct, chat, text)."""
    from pipeline.resume.store import UnitStore
    from pipeline.resume.units import clean_file, sig_key, sig_unit
    from pipeline.sources import expand
    from schemas.recipe import load_recipe
    sources = [
        {"name": "ja", "kind": "alpaca", "path": "../samples/japanese_alpaca/*.json", "license": "cc-by-nc-4.0"},
        {"name": "chat", "kind": "sharegpt", "path": "../samples/sharegpt/*.json", "license": "apache-2.0"},
        {"name": "wiki", "kind": "redpajama", "path": "../samples/redpajama_format/wikipedia_sample.jsonl", "license": "cc-by-sa-3.0"},
    ]
    recipe = load_recipe(samples_copy(tmp_path, sources=sources, license_policy=None, runtime={"unit_records": 40}))
    work = UnitStore(tmp_path / "out")
    tables = set()
    for spec in recipe.sources:
        for f in expand(recipe, spec):
            info = clean_file(work, recipe, spec.name, f)
            assert info["signed"] == info["units"]  # every unit cleaned here was signed here
            for key in info["units"]:
                path = work.unit_path("sig", sig_key(recipe, key)) / "sig.npy"
                fused = np.load(path)
                tables.update(t for t in ("instruct", "chat", "text") if work.table("clean", key, t) is not None)
                shutil.rmtree(path.parent)  # as if a kill came between the clean unit's save and this one
                assert sig_unit(work, recipe, key) == (sig_key(recipe, key), False)
                assert np.array_equal(np.load(path), fused), (f.rel, key)
    assert tables == {"instruct", "chat", "text"}


def test_duplicate_rejects_spilled_by_the_kept_pass_equal_those_read_again(tmp_path, monkeypatch):
    """output_rows makes the duplicates' rejects from the range it read (DuplicateSpill) and output_rejects
    reads them back by id range: the same rejects, in the same order, as reading every unit again; the
    kept pass in 13 ranges of several duplicate batches each, the rejects pass in 20 ranges cut elsewhere."""
    from pipeline.clean.filters import FilterContext
    from pipeline.clean.stage import CleanStage
    from pipeline.resume.store import UnitStore
    from pipeline.sources import SourceFile, read_file
    from schemas.recipe import SourceSpec

    monkeypatch.setattr(assemble, "PART_ROWS", 40)
    monkeypatch.setattr(assemble, "_DUP_BATCH", 7)
    work = UnitStore(tmp_path / "out")
    keys, ids = [], []
    for kind, rel in [
        ("alpaca", "japanese_alpaca/alpaca_data_ja.sample.json"),
        ("sharegpt", "sharegpt/fastchat_dummy_conversation.sample.json"),
        ("redpajama", "redpajama_format/wikipedia_sample.jsonl"),
    ]:
        path = ROOT / "data/samples" / rel
        spec = SourceSpec(name=kind, kind=kind, path=rel, license="cc-by-4.0")
        rows = list(CleanStage(FilterContext())(read_file(SourceFile(kind, path, path.name, rel), spec, ROOT)))
        for half in (rows[::2], rows[1::2]):  # two units a file: a range is read from every unit
            keys.append(f"u{len(keys)}")
            work.save("clean", keys[-1], half, {"key": keys[-1]})
        ids += [r["id"] for r in rows if "reason" not in r]
    dup = sorted(ids)[::3]  # every third kept row a duplicate, near and exact by turns
    gone = Duplicates(
        work,
        save_duplicates(
            work, dup, dup[-1:] + dup[:-1], [0.9 if k % 2 == 0 else None for k in range(len(dup))], ["?"] * len(dup)
        ),
    )

    def rejects(spill):
        kept = {}
        for table in ("instruct", "text", "chat"):
            parts = list(assemble.output_rows(work, keys, table, gone, 500, 0, spill))  # 13 ranges
            kept[table] = pa.concat_tables(parts).to_pylist()
        out = list(assemble.output_rejects(work, keys, gone, 777, 0, spill))  # 20 ranges, cut elsewhere
        return kept, pa.concat_tables(out).to_pylist()

    spill = assemble.DuplicateSpill(work)
    kept_a, rejects_a = rejects(spill)
    kept_b, rejects_b = rejects(None)
    assert kept_a == kept_b and rejects_a == rejects_b
    assert sum(r["stage"] == "dedup" for r in rejects_a) == len(dup)
    assert [r["id"] for r in rejects_a] == sorted(r["id"] for r in rejects_a)
    assert not list(work.scratch().iterdir())  # the spill files are gone once the rejects are read


def test_prefetched_keeps_order_raises_in_place_and_holds_at_most_two_ranges():
    import threading

    from pipeline.sink.output import prefetched

    alive, peak, lock = [0], [0], threading.Lock()

    class Item:  # counts the items alive at once (made and not yet freed)
        def __init__(self, n):
            self.n = n
            with lock:
                alive[0] += 1
                peak[0] = max(peak[0], alive[0])

        def __del__(self):
            with lock:
                alive[0] -= 1

    def items():
        for n in range(50):
            yield Item(n)

    got = []
    for item in prefetched(items(), depth=1):
        got.append(item.n)
        del item
    assert got == list(range(50)) and peak[0] <= 2 and alive[0] == 0

    def broken():
        yield from range(3)
        raise ValueError("range 3 is broken")

    seen = []
    with pytest.raises(ValueError, match="range 3 is broken"):
        for x in prefetched(broken()):
            seen.append(x)
    assert seen == [0, 1, 2]  # the items before the error, then the error at its place
    gen = prefetched(iter(range(10**6)))
    assert next(gen) == 0
    gen.close()  # an early stop ends the thread: no item made past the two ahead
    assert not [t for t in threading.enumerate() if t.name == "write-prefetch"]


def test_build_tasks_allocate_arrow_buffers_from_malloc():
    """Every build task runs under memory_released(): Arrow's buffers then come from the C library's malloc,
    whose freed memory malloc_trim hands back (mimalloc kept ~200 MB of the write stage's at 2M documents)."""
    import pyarrow as pa

    from pipeline.processes import memory_released

    with memory_released():
        assert pa.default_memory_pool().backend_name == "system"
        t = pa.table({"x": pa.array(range(100_000))})
        assert t.column("x").chunk(0).buffers()[1].size >= 800_000 and pa.system_memory_pool().bytes_allocated() > 0


def test_build_workers_start_with_malloc_for_arrow_and_one_arena(monkeypatch):
    """The environment the build's worker processes inherit: Arrow on malloc, one malloc arena; a value the
    user set is kept."""
    from flows.build import worker_environment

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    worker_environment()
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system" and os.environ["MALLOC_ARENA_MAX"] == "4"
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    worker_environment()
    assert os.environ["MALLOC_ARENA_MAX"] == "1"


def test_freed_heap_is_kept_up_to_the_limit_and_handed_back_past_it():
    """release_memory(keep_free) leaves malloc's freed memory in the process while malloc holds at most
    keep_free bytes of it (the write's next id range reuses those pages instead of faulting them in again),
    and hands it back past that, as release_memory() always does."""
    from pipeline.processes import heap_free_bytes, release_memory

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    release_memory()
    blocks = [bytes(4000) for _ in range(40_000)]  # 160 MB from malloc's heap, written
    kept = blocks[::10]  # every tenth stays: the freed ones cannot merge into the heap's top (trimmed by free)
    del blocks
    free = heap_free_bytes()
    assert free > 120 << 20
    before = rss()
    release_memory(free + (64 << 20))
    assert abs(rss() - before) < 16 << 20  # kept
    release_memory(free - (64 << 20))
    assert rss() < before - (100 << 20)  # past the limit: handed back
    assert len(kept) == 4000


def chain_texts() -> list[str]:
    """Families of six ever more edited copies of a Wikipedia paragraph, shuffled: each copy is like the
    one before it, less like those further away, so the stars a run gives depend on the order it is walked."""
    import random

    rng = random.Random(3)
    texts = []
    for line in WIKI.read_text(encoding="utf-8").splitlines()[:20]:
        chars = list(json.loads(line)["text"][:400])
        for _ in range(6):
            for _ in range(len(chars) // 60):
                chars[rng.randrange(len(chars))] = rng.choice("あいうえおかきくけこ")
            texts.append("".join(chars))
    rng.shuffle(texts)
    return texts


@pytest.mark.parametrize("unit_records", [1, 7, 1000])
def test_near_dedup_walks_the_corpus_in_read_order_whatever_the_unit_cut(tmp_path, unit_records):
    """Near dedup's stars depend on the order a run's members are walked (here the id order gives 21
    different pairs of 88). The streaming build walks them in the order the corpus was read, not in the units'
    id order: one unit of 120 rows, 18 units of 7 or 120 units of one give the duplicates that one pass
    over the rows as read gives."""
    from pipeline.resume.store import UnitStore
    from pipeline.resume.units import clean_file, exact_bucket, exact_keys, near_unit
    from pipeline.sources import expand
    from schemas.recipe import load_recipe

    texts = chain_texts()
    sources = [{"name": "chain", "kind": "redpajama", "path": "../samples/chain.jsonl", "license": "mit"}]
    path = samples_copy(tmp_path, sources=sources, license_policy=None, runtime={"unit_records": unit_records})
    (tmp_path / "samples/chain.jsonl").write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
    )
    recipe = load_recipe(path)
    work = UnitStore(tmp_path / "out")
    [f] = expand(recipe, recipe.sources[0])
    keys = clean_file(work, recipe, "chain", f)["units"]
    assert len(keys) == -(-len(texts) // unit_records)
    for b in range(len(exact_keys(recipe, keys))):
        exact_bucket(work, recipe, keys, b)
    key, reused, n = near_unit(work, recipe, keys)
    got = work.table("near", key, "duplicates").to_pylist()

    gone = assemble.dropped(work, {"exact": exact_keys(recipe, keys)})
    read = {text_row(lineage("chain", "chain.jsonl", i, "mit", "ja"), t)["id"]: i for i, t in enumerate(texts)}
    rows = sorted(assemble.kept_rows(work, keys), key=lambda r: read[r["id"]])  # the cleaned rows, as read
    docs = [Doc(r["id"], r["text"], r["lang"]) for r in rows if not gone.mask(np.array([r["id"]], "S32"))[0]]
    assert (reused, n, len(rows)) == (False, len(docs), 114)  # 6 of 120 rejected by the filters
    s = NearDupSettings()
    want = near_duplicates(docs, s)
    assert [(g["id"], g["duplicate_of"], g["similarity"]) for g in got] == [
        (d.id, d.duplicate_of, d.similarity) for d in want
    ]
    by_id = {(d.id, d.duplicate_of) for d in near_duplicates(sorted(docs, key=lambda d: d.id), s)}
    assert len(want) == 88 and len(by_id ^ {(d.id, d.duplicate_of) for d in want}) == 21


def _stats_state(tally, stats) -> dict:
    """Everything the write's statistics hold, with the order of every dict and counter."""
    return {
        "tally": [list(c.items()) for c in (tally.kept, tally.licenses, tally.tasks, tally.languages)],
        "parts": {
            key: {
                "chars": [(k, list(v)) for k, v in part.chars.items()],
                "samples": [(k, v) for k, v in part.samples.items() if v],
                "languages": [(k, list(c.items())) for k, c in part.languages.items()],
                "licenses": [(k, list(c.items())) for k, c in part.licenses.items()],
            }
            for key, part in sorted(stats.parts.items())
        },
    }


def test_column_statistics_equal_the_row_by_row_ones_in_values_and_order():
    """The write's statistics of instruction and text rows by column (Tally.add_kept_table,
    ReportStats.add_kept_table) leave every count, length and sample, and the order of every key, as the
    row by row path (add_kept) does: real sample rows, several sources, licences, tasks, languages (null
    and empty among them), empty fields, two splits mixed in each chunk."""
    from conftest import SAMPLES

    from pipeline.sink.output import STAT_COLUMNS, Tally
    from pipeline.sink.report import ReportStats
    from schemas.columns import TABLE_SCHEMAS

    rng = np.random.default_rng(5)
    pick = lambda options, n: [options[i] for i in rng.integers(0, len(options), n)]  # noqa: E731
    alpaca = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text(encoding="utf-8"))
    texts = [json.loads(x)["text"] for x in (SAMPLES / "redpajama_format" / "wikipedia_sample.jsonl").open(encoding="utf-8")]
    n, m = len(alpaca), len(texts) * 3
    tables = {
        "instruct": pa.table(
            {
                "source": pick(["ja", "en", "gen"], n),
                "lang": pick(["ja", "en", None, "", "und"], n),
                "license": pick(["cc-by-nc-4.0", "mit", "apache-2.0"], n),
                "task": pick(["", "qa", "summarize", "text"], n),
                "instruction": [r["instruction"] for r in alpaca],
                "input": [r.get("input") or "" for r in alpaca],
                "output": [r["output"] if k % 7 else "" for k, r in enumerate(alpaca)],
            }
        ),
        "text": pa.table(
            {
                "source": pick(["wiki", "c4"], m),
                "lang": pick(["en", "ja", None], m),
                "license": pick(["cc-by-sa-3.0", "odc-by"], m),
                "text": [t if k % 5 else "" for k, t in enumerate(texts * 3)],
            }
        ),
    }
    for table, t in tables.items():
        names = [c for c in STAT_COLUMNS if c in TABLE_SCHEMAS[table].names]
        t = t.select([c for c in names if c in t.column_names])
        splits = ["train"] * 74 + pick(["train", "validation"], t.num_rows - 74)  # two chunks all train
        rows_tally, rows_stats = Tally(), ReportStats()
        for row, split in zip(t.to_pylist(), splits, strict=True):
            rows_tally.add_kept(row)
            rows_stats.add_kept(table, split, row)
        cols_tally, cols_stats = Tally(), ReportStats()
        assert cols_stats.columnar(table)
        for at in range(0, t.num_rows, 37):  # chunks, as the write gets them
            chunk, part = t.slice(at, 37), splits[at : at + 37]
            cols_tally.add_kept_table(chunk)
            validation = np.array([s == "validation" for s in part])
            cols_stats.add_kept_table(table, chunk, validation if validation.any() else None)
        assert _stats_state(cols_tally, cols_stats) == _stats_state(rows_tally, rows_stats)
        state = _stats_state(rows_tally, rows_stats)
        assert len(state["parts"]) == 2 and all(p["samples"] for p in state["parts"].values())


def test_column_reject_statistics_equal_the_row_by_row_ones():
    """Rejects' statistics by column (Tally.add_rejects_table, ReportStats.add_rejects_table): the same
    reason counts per source, (stage, reason) counts and report examples, in the same order, as add_reject
    row by row; without a cluster table (near duplicates counted per kept row) the column path declines."""
    from conftest import SAMPLES

    from pipeline.sink.output import Tally
    from pipeline.sink.report import ReportStats

    rng = np.random.default_rng(11)
    alpaca = json.loads((SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json").read_text(encoding="utf-8"))
    n = len(alpaca)
    pick = lambda options: [options[i] for i in rng.integers(0, len(options), n)]  # noqa: E731
    stage = pick(["parse", "filter", "filter", "dedup", "license"])
    reason = [{"parse": "parse_error", "license": "not_allowed", "dedup": "duplicate_near"}.get(s) or r for s, r in zip(stage, pick(["too_short", "repetition", "language"]), strict=True)]
    t = pa.table(
        {
            "source": pick(["ja", "en", "gen"]),
            "stage": stage,
            "reason": reason,
            "duplicate_of": pick([None, "a" * 32]),
            "detail": pick([None, "", "similarity=0.9000", "len=3 \\xff <b>"]),
            "record": [json.dumps(r, ensure_ascii=False) if k % 6 else ("{not json" if k % 12 else None) for k, r in enumerate(alpaca)],
        }
    )
    rows_tally, rows_stats = Tally(), ReportStats(near_clusters=Counter())
    records = t.column("record")
    for i, row in enumerate(t.select(["source", "stage", "reason", "duplicate_of", "detail"]).to_pylist()):
        rows_tally.add_reject(row)
        rows_stats.add_reject(row, lambda i=i: records[i].as_py())
    cols_tally, cols_stats = Tally(), ReportStats(near_clusters=Counter())
    for at in range(0, n, 41):
        cols_tally.add_rejects_table(t.slice(at, 41))
        assert cols_stats.add_rejects_table(t.slice(at, 41))
    assert [(k, list(c.items())) for k, c in cols_tally.reasons.items()] == [(k, list(c.items())) for k, c in rows_tally.reasons.items()]
    assert list(cols_stats.rejects.items()) == list(rows_stats.rejects.items())
    want = [(k, v) for k, v in rows_stats.examples.items() if v]
    assert [(k, v) for k, v in cols_stats.examples.items() if v] == want
    assert sum(len(v) for _, v in want) >= 6 and any(x["record"] == "(not kept)" for _, v in want for x in v)
    assert ReportStats().add_rejects_table(t) is False
