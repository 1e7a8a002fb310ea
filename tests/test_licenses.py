"""Per-row licences: arXiv rows carry their paper's licence (from the shipped OAI metadata records), the
licence policy judges each row, refused records are withheld, and the dataset card lists every licence
with its duties."""

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import SAMPLES, read_all, write_recipe

from pipeline.licenses import duties, licence_id, no_derivatives

SNAPSHOT = SAMPLES / "arxiv_metadata" / "arxiv-metadata-oai-snapshot.sample.json"
UNARXIVE = SAMPLES / "arxiv_metadata" / "unarxive_2024_preview.json"

NONEXCLUSIVE = "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"
BY_NC_ND = "http://creativecommons.org/licenses/by-nc-nd/4.0/"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (NONEXCLUSIVE, "arxiv-nonexclusive-distrib-1.0"),
        (BY_NC_ND, "CC-BY-NC-ND-4.0"),
        ("http://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-sa/4.0/legalcode", "CC-BY-SA-4.0"),
        ("http://creativecommons.org/licenses/by-nc-sa/3.0/", "CC-BY-NC-SA-3.0"),
        ("http://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
        ("http://arxiv.org/licenses/assumed-1991-2003/", "arxiv-assumed-1991-2003"),
        ("  cc-by-4.0 ", "cc-by-4.0"),  # an id already: kept as it is
        ("https://example.org/my-licence", "https://example.org/my-licence"),  # unknown: never guessed
    ],
)
def test_licence_urls_become_spdx_style_ids(given, expected):
    assert licence_id(given) == expected


def test_duties_read_from_the_licence():
    assert duties("CC-BY-NC-ND-4.0") == "attribution, non-commercial use only, no derivatives"
    assert duties("cc-by-sa-3.0") == "attribution, share-alike (derivatives under the same licence)"
    assert duties("CC0-1.0") == "none (public domain dedication)"
    assert duties("arxiv-nonexclusive-distrib-1.0").startswith("arXiv's non-exclusive distribution licence")
    assert duties("https://example.org/my-licence") == ""
    assert no_derivatives("CC-BY-NC-ND-4.0") and no_derivatives("cc-by-nd-4.0")
    assert not no_derivatives("CC-BY-NC-4.0") and not no_derivatives("arxiv-nonexclusive-distrib-1.0")


def _arxiv_inputs(dir):
    """RedPajama arXiv lines for the 100 papers of the shipped OAI snapshot sample and the unarXive
    preview's paper (CC BY 4.0), and a metadata file holding their real records."""
    records = [json.loads(line) for line in SNAPSHOT.read_text(encoding="utf-8").splitlines()]
    records.append(json.loads(UNARXIVE.read_text(encoding="utf-8"))["metadata"])
    (dir / "meta").mkdir()
    (dir / "meta" / "oai.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    lines = []
    for i, r in enumerate(records):  # a body: this paper's abstract and the next two papers'
        body = "\n\n".join(records[(i + k) % len(records)]["abstract"].strip() for k in range(3))
        lines.append(json.dumps({"text": body, "meta": {"arxiv_id": r["id"]}}) + "\n")
    (dir / "arxiv.jsonl").write_text("".join(lines), encoding="utf-8")
    return records


def test_arxiv_rows_carry_their_papers_licence(tmp_path):
    records = _arxiv_inputs(tmp_path)
    rows = read_all("arxiv_redpajama", tmp_path / "arxiv.jsonl", metadata="meta/*.jsonl", license="cc0-1.0")
    assert len(rows) == 101 and not any("stage" in r for r in rows)
    assert Counter(r["license"] for r in rows) == {
        "cc0-1.0": 87,  # no licence in the record: the source's
        "arxiv-nonexclusive-distrib-1.0": 11,
        "CC-BY-NC-ND-4.0": 2,
        "CC-BY-4.0": 1,
    }
    by_id = {json.loads(r["meta"])["arxiv_id"]: r for r in rows}
    for rec in records:  # the URL as given stays in meta
        assert json.loads(by_id[rec["id"]]["meta"])["paper_license"] == rec["license"]


def _build(tmp_path, name, policy):
    from flows.build import build_flow

    recipe = write_recipe(
        tmp_path,
        {
            "name": name,
            "sources": [
                {"name": "arxiv", "kind": "arxiv_redpajama", "path": "arxiv.jsonl", "metadata": "meta/*.jsonl",
                 "license": "odd: licence | #1"},
            ],
            "languages": ["en"],
            "dedup": {"exact": True, "near": False},
            "split": {"validation": 0.0},
            **({"license_policy": policy} if policy else {}),
        },
        name=f"{name}.yaml",
    )
    build_flow(str(recipe), str(tmp_path / name))
    out = tmp_path / name
    kept = pq.read_table(out / "instruct").to_pylist()
    rejects = pq.read_table(out / "rejects").to_pylist() if (out / "rejects").exists() else []
    return out, kept, rejects


def test_policy_judges_each_rows_own_licence_and_withholds_refused_records(tmp_path, prefect_harness):
    _arxiv_inputs(tmp_path)
    out, kept, rejects = _build(tmp_path, "all", None)
    every = Counter(r["license"] for r in kept + rejects)
    assert every == {"odd: licence | #1": 87, "arxiv-nonexclusive-distrib-1.0": 11, "CC-BY-NC-ND-4.0": 2, "CC-BY-4.0": 1}
    cc_by = {r["id"] for r in kept if r["license"] == "CC-BY-4.0"}
    assert len(cc_by) == 1

    card = (out / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "other"
    assert "odd: licence | #1" in header["license_details"]  # quoted in YAML: the header still parses
    kept_by = Counter(r["license"] for r in kept)
    assert f"| CC-BY-NC-ND-4.0 | {kept_by['CC-BY-NC-ND-4.0']} | attribution, non-commercial use only, no derivatives |" in card
    assert f"| odd: licence \\| #1 | {kept_by['odd: licence | #1']} | not known: check the source |" in card
    assert f"- CC-BY-NC-ND-4.0: {kept_by['CC-BY-NC-ND-4.0']} summarization rows" in card

    out, kept, rejects = _build(tmp_path, "by", {"allow": ["cc-by-4.0"]})
    assert {r["id"] for r in kept} == cc_by  # exactly the CC BY row
    refused = [r for r in rejects if r["stage"] == "license"]
    assert len(refused) == 100 and {r["reason"] for r in refused} == {"license_not_allowed"}
    assert {r["record"] for r in refused} == {""}  # lineage and reason, not the refused text
    assert Counter(r["detail"] for r in refused) == {"odd: licence | #1": 87, "arxiv-nonexclusive-distrib-1.0": 11, "CC-BY-NC-ND-4.0": 2}
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["counts"]["arxiv"]
    assert c["read"] == 101 == c["kept"] + sum(c["rejected"].values())

    _out, _kept, rejects = _build(tmp_path, "keep", {"allow": ["cc-by-4.0"], "keep_rejected_text": True})
    refused = [r for r in rejects if r["stage"] == "license"]
    assert len(refused) == 100 and all(json.loads(r["record"])["output"] for r in refused)
