import gzip
import json
import shutil

import pytest
import zstandard
from conftest import SAMPLES, read_all

from pipeline.records import is_reject, make_id


def test_alpaca_ja_array_reads_every_record_with_lineage():
    f = SAMPLES / "japanese_alpaca" / "alpaca_data_ja.sample.json"
    raw = json.loads(f.read_text(encoding="utf-8"))
    rows = read_all("alpaca", f)
    assert len(rows) == 300 == len(raw)
    assert [r["source_index"] for r in rows] == list(range(300))
    first = rows[0]
    assert (first["instruction"], first["input"], first["output"]) == (
        raw[0]["instruction"],
        raw[0]["input"],
        raw[0]["output"],
    )
    assert first["id"] == make_id("s", f.name, 0)
    assert first["source_file"] == f.name and first["license"] == "cc-by-4.0" and first["task"] == "general"
    assert len({r["id"] for r in rows}) == 300


def test_alpaca_noinput_placeholder_becomes_empty_input():
    f = SAMPLES / "alpaca_en" / "alpaca_data_original.sample.json"
    raw = json.loads(f.read_text(encoding="utf-8"))
    rows = read_all("alpaca", f)
    placeholders = [i for i, r in enumerate(raw) if r["input"].strip().lower() == "<noinput>"]
    for i in placeholders:
        assert rows[i]["input"] == ""
    assert all(rows[i]["input"] == r["input"] for i, r in enumerate(raw) if i not in placeholders)


def test_alpaca_reader_takes_dolly_ja_array_and_keeps_extra_fields():
    f = SAMPLES / "dolly_15k_ja" / "databricks-dolly-15k-ja.sample.json"
    rows = read_all("alpaca", f)
    assert len(rows) == 32
    meta = json.loads(rows[5]["meta"])
    assert meta == {"category": json.loads(f.read_text())[5]["category"], "index": "5"}


def test_alpaca_jsonl_form(tmp_path):
    src = json.loads((SAMPLES / "alpaca_en" / "alpaca_data_cleaned.sample.json").read_text())
    f = tmp_path / "a.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in src[:5]))
    rows = read_all("alpaca", f)
    assert [r["instruction"] for r in rows] == [r["instruction"] for r in src[:5]]


def test_dolly_maps_context_and_response():
    f = SAMPLES / "dolly_15k" / "databricks-dolly-15k.sample.jsonl"
    lines = [json.loads(x) for x in f.read_text().splitlines()]
    rows = read_all("dolly", f)
    assert len(rows) == 100
    for row, rec in zip(rows, lines, strict=True):
        assert row["input"] == rec["context"] and row["output"] == rec["response"]
        assert json.loads(row["meta"]) == {"category": rec["category"]}


@pytest.mark.parametrize("compress", ["plain", "gz", "zst"])
def test_redpajama_plain_gz_zst_give_the_same_rows(tmp_path, compress):
    src = SAMPLES / "redpajama_format" / "wikipedia_sample.jsonl"
    data = src.read_bytes()
    if compress == "gz":
        f = tmp_path / "w.jsonl.gz"
        f.write_bytes(gzip.compress(data))
    elif compress == "zst":
        f = tmp_path / "w.jsonl.zst"
        f.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        f = tmp_path / "w.jsonl"
        shutil.copy(src, f)
    rows = read_all("redpajama", f)
    assert len(rows) == 30
    assert rows[0]["text"].startswith(json.loads(data.splitlines()[0])["text"][:20])
    assert json.loads(rows[0]["meta"])["language"] == "ja"


def test_redpajama_meta_as_json_string_is_parsed_and_subset_kept():
    f = SAMPLES / "redpajama_format" / "hf_loader_variant_sample.jsonl"
    rows = read_all("redpajama", f)
    assert len(rows) == 7
    meta = json.loads(rows[0]["meta"])
    assert meta["arxiv_id"] == "2305.01582" and meta["red_pajama_subset"] == "arxiv"


def test_arxiv_latex_extracts_abstract_and_clean_body():
    f = SAMPLES / "arxiv_latex" / "tex" / "TeamLEGWORK__LEGWORK-paper.tex"
    [row] = read_all("arxiv_latex", f, max_body_chars=5000)
    assert row["task"] == "summarization"
    assert row["output"].startswith("We present \\lw{} (LISA Evolution and Gravitational Wave Orbit Kit)")
    assert row["input"].startswith("\\section{Introduction}")
    assert len(row["input"]) <= 5000
    assert "\\begin{figure" not in row["input"] and "\\documentclass" not in row["input"]
    assert row["instruction"] in {
        "Write the abstract of the following paper.",
        "Summarize the following paper body as an abstract.",
        "Read the paper below and write a concise abstract for it.",
    }


def test_arxiv_latex_every_sample_has_abstract_and_body():
    files = sorted((SAMPLES / "arxiv_latex" / "tex").glob("*.tex"))
    rows = [r for f in files for r in read_all("arxiv_latex", f)]
    assert len(rows) == 12 and not any(is_reject(r) for r in rows)
    for r in rows:
        assert "\\end{abstract}" not in r["output"] and "\\bibliography" not in r["input"]
        assert not any(line.lstrip().startswith("%") for line in r["input"].splitlines())


def test_arxiv_latex_without_abstract_is_a_reject(tmp_path):
    f = tmp_path / "p.tex"
    f.write_text("\\documentclass{article}\n\\begin{document}\n\\section{Intro}\nText.\n\\end{document}\n")
    [rej] = read_all("arxiv_latex", f)
    assert (rej["stage"], rej["reason"]) == ("parse", "no_abstract")
    assert rej["record"] == f.read_text()


def test_arxiv_pairs_strip_sentence_tags():
    f = SAMPLES / "arxiv_summarization" / "pubmed_test.sample.txt"
    rec = json.loads(f.read_text().splitlines()[0])
    rows = read_all("arxiv_pairs", f, max_body_chars=100000)
    assert len(rows) == 3
    assert "<S>" not in rows[0]["output"] and rows[0]["output"].startswith(
        rec["abstract_text"][0].replace("<S>", "").strip()[:30]
    )
    assert rows[0]["input"].startswith(rec["article_text"][0])


def test_arxiv_pairs_keep_every_other_field_in_meta(tmp_path):
    f = SAMPLES / "arxiv_summarization" / "arxiv_test.sample.txt"
    recs = [json.loads(line) for line in f.read_text().splitlines()]
    rows = read_all("arxiv_pairs", f, max_body_chars=100000)
    meta = json.loads(rows[0]["meta"])
    # sections re-split article_text exactly: kept as sentences per section, not as a second copy
    assert meta == {
        "article_id": recs[0]["article_id"],
        "labels": recs[0]["labels"],
        "section_names": recs[0]["section_names"],
        "section_lengths": [len(s) for s in recs[0]["sections"]],
    }
    assert sum(meta["section_lengths"]) == len(recs[0]["article_text"])
    odd = {**recs[0], "sections": [["not the article"]], "venue": {"name": "x"}}
    (tmp_path / "a.txt").write_text(json.dumps(odd) + "\n")
    meta = json.loads(read_all("arxiv_pairs", tmp_path / "a.txt")[0]["meta"])
    assert meta["sections"] == [["not the article"]] and meta["venue"] == {"name": "x"}
    assert "section_lengths" not in meta


def test_arxiv_redpajama_joins_metadata_by_id_and_rejects_unmatched(tmp_path):
    f = SAMPLES / "redpajama_format" / "arxiv_sample.jsonl"
    meta = str(SAMPLES / "arxiv_metadata" / "*.jsonl")
    rows = read_all("arxiv_redpajama", f, metadata=meta)
    assert [r["output"][:20] for r in rows] == ["\\addtocounter{footno", "We present \\lw{} (LI"]
    assert json.loads(rows[0]["meta"]) == {  # the RedPajama line's meta, then the join's fields
        "timestamp": "2023-07-27T18:59:56", "yymm": "2305", "arxiv_id": "2305.01582", "language": "en",
        "url": "https://arxiv.org/abs/2305.01582", "source": "arxiv", "paper_license": None,
        "title": "Interpretable Machine Learning for Science with PySR and SymbolicRegression.jl",
    }
    only_oai = str(SAMPLES / "arxiv_metadata" / "arxiv-metadata-oai-snapshot.sample.json")
    rejects = read_all("arxiv_redpajama", f, metadata=only_oai)
    assert [(r["reason"], r["source_index"]) for r in rejects] == [("no_abstract", 0), ("no_abstract", 1)]
    assert json.loads(rejects[0]["record"])["text"].startswith("\\section{Introduction}")
