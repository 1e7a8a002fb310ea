"""Property-based fuzzing of every source kind (hypothesis, fixed seed, bounded example counts).

Files are made of lines that are well-formed records of the kind, random JSON values of any type and
depth, raw bytes (invalid UTF-8, NUL, CESU-encoded surrogates), lone-surrogate escapes, deep nesting,
blank lines; with or without a BOM and CRLF line ends; plain, gzip or zstd, whole or cut short.

Reader properties (in process, many examples): a file is either refused with an InputFileError that
names it, or every record in it ends in exactly one row or reject (source_index 0..n-1, each once); a
parse reject's ``record`` is its raw line (base64 of its bytes where they are not UTF-8); a truncated archive is
always refused, never read as shorter; every row goes through cleaning and into a Parquet unit.
CLI properties (in process with typer's runner, fewer examples): the build exits 0 or 2, never with an
exception; exit 2 prints exactly one ``error:`` line, naming the file; on 0 the manifest's accounting
is exact for the file's records.
"""

import base64
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import read_all, write_recipe
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from pipeline.clean.stage import CleanStage
from pipeline.errors import InputFileError
from pipeline.records import is_reject
from pipeline.resume.store import UnitStore
from pipeline.sources._io import BASE64_NOTE
from pipeline.sources._streams import file_encoding
from schemas.recipe import Recipe

SEED = 20261202
READER_EXAMPLES = 200
CLI_EXAMPLES = 20
FUZZ = settings(
    max_examples=READER_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# text with every code point, lone surrogates included (hypothesis leaves category Cs out by default)
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
ARXIV_IDS = ["2305.01582", "1706.03762", "2401.00001"]


def records_of(kind: str):
    """Well-formed records of ``kind`` (with random text, which may still be rejected by cleaning)."""
    if kind == "alpaca":
        return st.fixed_dictionaries({"instruction": TEXT, "input": TEXT, "output": TEXT})
    if kind == "dolly":
        return st.fixed_dictionaries(
            {"instruction": TEXT, "context": TEXT, "response": TEXT, "category": st.sampled_from(["qa"])}
        )
    if kind == "redpajama":
        return st.fixed_dictionaries({"text": TEXT, "meta": st.dictionaries(TEXT, TEXT, max_size=2) | TEXT})
    if kind == "arxiv_pairs":
        return st.fixed_dictionaries({"article_text": st.lists(TEXT, max_size=3), "abstract_text": st.lists(TEXT)})
    if kind == "arxiv_redpajama":
        return st.fixed_dictionaries({"text": TEXT, "meta": st.fixed_dictionaries({"arxiv_id": st.sampled_from(ARXIV_IDS)})})
    if kind == "messages":
        part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": TEXT})
        turn = st.fixed_dictionaries(
            {"role": st.sampled_from(["system", "user", "assistant", "tool"]), "content": TEXT | st.lists(part, max_size=2)}
        )
        return st.fixed_dictionaries({"messages": st.lists(turn, max_size=4)})
    if kind == "sharegpt":
        turn = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "system", "function_call"]), "value": TEXT})
        return st.fixed_dictionaries({"conversations": st.lists(turn, max_size=4)}, optional={"system": TEXT})
    raise ValueError(kind)


def dumps(value, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def lines_of(kind: str):
    value_line = st.builds(dumps, records_of(kind) | JSON_VALUES, st.booleans())
    deep = st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)
    surrogate = st.sampled_from([b'{"text": "\\ud800", "instruction": "\\udfff x", "output": "y"}', b'"\\ud83d"'])
    junk = st.binary(max_size=30).filter(lambda b: b.strip() not in (b"{", b"["))
    blank = st.sampled_from([b"", b"   ", b"\t"])
    return st.one_of(value_line, value_line, deep, surrogate, junk, blank)


@st.composite
def jsonl_files(draw, kind: str):
    lines = draw(st.lists(lines_of(kind), max_size=8))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = newline.join(lines) + draw(st.sampled_from([b"", newline]))
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data


@st.composite
def array_files(draw, kind: str):
    items = draw(st.lists(records_of(kind) | JSON_VALUES, max_size=6))
    data = json.dumps(items, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
    head = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b" " * 5000, b"\n\n", b"\x00"]))
    return head + data.encode("utf-8", "surrogatepass")


@st.composite
def packed(draw, content):
    """(file suffix, bytes on disk, plain bytes, truncated?) of ``content`` plain, gzip or zstd, maybe cut."""
    data = draw(content)
    how = draw(st.sampled_from(["", ".gz", ".zst"]))
    disk = {"": lambda d: d, ".gz": gzip.compress, ".zst": zstandard.ZstdCompressor().compress}[how](data)
    cut = how != "" and draw(st.booleans())
    if cut:  # at least one byte left: an empty file is an empty input, whatever its suffix
        disk = disk[: draw(st.integers(1, len(disk) - 1))]
    return how, disk, data, cut


def expected_records(plain: bytes, arrays: bool = False) -> tuple[str, list[bytes]]:
    """("lines", the raw records) as the JSON-lines reader must see them, or ("document", []) for a
    file read as one JSON document (``arrays``: kinds that take a JSON array file, chosen by its "[")."""
    if plain.startswith(b"\xef\xbb\xbf"):
        plain = plain[3:]
    if arrays and plain.lstrip(b" \t\r\n\x00")[:1] == b"[":
        return "document", []
    records = []
    for seg in plain.split(b"\n"):
        line = seg.rstrip(b"\r\n")
        if line.strip():
            if not records and line.strip() in (b"{", b"["):
                return "document", []
            records.append(line)
    return "lines", records


def check_rows(rows: list[dict], n: int, raw_lines: list[bytes] | None, tmp: Path) -> None:
    assert sorted(r["source_index"] for r in rows) == list(range(n))  # each record exactly once
    if raw_lines is not None:
        for r in rows:
            if is_reject(r) and r["stage"] == "parse":
                raw = raw_lines[r["source_index"]]
                if r["detail"].endswith(BASE64_NOTE):  # not UTF-8: the bytes themselves, in base64
                    assert base64.b64decode(r["record"]) == raw
                else:  # text: as decoded in the file's encoding (a file that is not UTF-8 may be EUC-JP/cp932)
                    [path] = [p for p in tmp.iterdir() if p.name.startswith("in.") and p.is_file()]
                    assert r["record"] == raw.decode(file_encoding(path))
    stage = CleanStage.from_recipe(Recipe(name="fuzz"))
    cleaned = list(stage(rows))
    assert len(cleaned) == len(rows)
    UnitStore(tmp / "out").save("clean", "k", cleaned, {})  # every row can be stored as Parquet


def read_or_refused(kind: str, path: Path, **kw):
    try:
        return read_all(kind, path, **kw), None
    except InputFileError as err:
        assert str(err).startswith(f"{path}: ")
        return None, err


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def metadata_dir(tmp: Path) -> Path:
    meta = tmp / "meta"
    meta.mkdir(exist_ok=True)
    recs = [{"id": i, "abstract": f"Abstract of {i}.", "license": "cc-by-4.0"} for i in ARXIV_IDS[:2]]
    (meta / "oai.json").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return meta


def drawn_and_read(data, content, tmp: Path, name: str, kind: str, **kw):
    """Draw a file, read it with ``kind``: (rows or None, InputFileError or None, plain bytes), or None
    when the draw was cut short (and then the file must have been refused)."""
    how, disk, plain, cut = data.draw(packed(content))
    rows, err = read_or_refused(kind, write(tmp, name + how, disk), **kw)
    if cut:
        assert err is not None, "a truncated archive was read as a shorter file"
        return None
    return rows, err, plain


def document_records(plain: bytes) -> int | None:
    """How many records a whole-file JSON document holds (None: it is not one)."""
    try:
        doc = json.loads(plain.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return len(doc) if isinstance(doc, list) else 1


@pytest.mark.parametrize("kind", ["alpaca", "dolly", "redpajama", "arxiv_pairs", "arxiv_redpajama", "messages", "sharegpt"])
@seed(SEED)
@FUZZ
@given(data=st.data())
def test_json_lines_readers_account_for_every_record_or_refuse_the_file(tmp_path_factory, kind, data):
    tmp = tmp_path_factory.mktemp("f")
    kw = {"metadata": str(metadata_dir(tmp) / "*.json")} if kind == "arxiv_redpajama" else {}
    got = drawn_and_read(data, jsonl_files(kind), tmp, "in.jsonl", kind, **kw)
    if got is None:
        return
    rows, err, plain = got
    mode, raw = expected_records(plain, arrays=kind in ("alpaca", "dolly", "messages", "sharegpt"))
    if mode == "document":  # read as one JSON document: its records, or refused when it is not one
        n = document_records(plain)
        assert (err is not None) == (n is None), err
        if n is not None:
            check_rows(rows, n, None, tmp)
        return
    assert err is None, err
    check_rows(rows, len(raw), raw, tmp)


@pytest.mark.parametrize("kind", ["alpaca", "dolly"])
@seed(SEED)
@FUZZ
@given(data=st.data())
def test_json_array_readers_account_for_every_element_or_refuse_the_file(tmp_path_factory, kind, data):
    tmp = tmp_path_factory.mktemp("f")
    got = drawn_and_read(data, array_files(kind), tmp, "in.json", kind)
    if got is None:
        return
    rows, err, plain = got
    n = document_records(plain)
    assert (err is not None) == (n is None), err  # not one JSON document: refused, with the file's name
    if n is not None:
        check_rows(rows, n, None, tmp)


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_latex_reader_gives_one_row_or_reject_per_file(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("f")
    body = st.builds(
        lambda a, b, junk: (
            f"\\documentclass{{article}}\\begin{{document}}\\begin{{abstract}}{a}\\end{{abstract}}{b}"
        ).encode("utf-8", "surrogatepass")
        + junk,
        TEXT,
        TEXT,
        st.binary(max_size=8),
    )
    got = drawn_and_read(data, body | st.binary(max_size=60), tmp, "paper.tex", "arxiv_latex")
    if got is not None:
        rows, err, _plain = got
        assert err is None, err
        check_rows(rows, 1, None, tmp)


@seed(SEED)
@settings(FUZZ, max_examples=30)
@given(
    cols=st.dictionaries(
        st.sampled_from(["instruction", "input", "output", "generation", "id"]),
        st.sampled_from([pa.string(), pa.int64()]),
        max_size=5,
    ),
    n=st.integers(0, 5),
    junk=st.binary(max_size=40),
    as_junk=st.booleans(),
)
def test_generated_reader_on_any_parquet_or_bytes(tmp_path_factory, cols, n, junk, as_junk):
    tmp = tmp_path_factory.mktemp("f")
    path = tmp / "g.parquet"
    if as_junk:
        path.write_bytes(junk)
    else:
        arrays = {c: pa.array(["x" * (i + 1) if t == pa.string() else i for i in range(n)], t) for c, t in cols.items()}
        pq.write_table(pa.table(arrays) if arrays else pa.table({"other": pa.array([1] * n)}), path)
    rows, err = read_or_refused("generated", path)
    if as_junk:
        assert err is not None
        return
    assert err is None, err
    check_rows(rows, n, None, tmp)


# --- the whole CLI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner(prefect_harness):
    from typer.testing import CliRunner

    return CliRunner()


@pytest.mark.parametrize("kind", ["alpaca", "redpajama"])
@seed(SEED)
@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(data=st.data())
def test_cli_build_exits_0_or_2_with_one_error_line_and_exact_accounting(
    tmp_path_factory, runner, kind, data
):
    from flows.cli import app

    tmp = tmp_path_factory.mktemp("cli")
    how, disk, plain, cut = data.draw(packed(jsonl_files(kind)))
    path = write(tmp, f"in.jsonl{how}", disk)
    recipe = write_recipe(
        tmp, {"name": "fuzz", "sources": [{"name": "s", "kind": kind, "path": path.name, "license": "mit"}]}
    )
    res = runner.invoke(app, ["build", str(recipe), "--out", str(tmp / "out")])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code in (0, 2), res.output
    event(f"exit {res.exit_code}")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    if res.exit_code == 2:
        assert len(errors) == 1 and str(path) in errors[0], res.stderr
        assert not (tmp / "out").exists()
        return
    assert not errors and not cut
    mode, raw = expected_records(plain, arrays=kind == "alpaca")
    manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    counts = manifest["counts"]["s"]
    assert counts["read"] == counts["kept"] + sum(counts["rejected"].values())
    if mode == "lines":
        assert counts["read"] == len(raw)
        shards = [pq.read_table(tmp / "out" / s["path"]) for s in manifest["shards"]]
        indices = sorted(i for t in shards for i in t.column("source_index").to_pylist())
        assert indices == list(range(len(raw)))
