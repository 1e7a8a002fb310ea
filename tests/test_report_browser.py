"""report.html in a real browser: headless Chromium opens the page of a real build, reports no console
error, no exception and no request beyond the file itself, and draws every figure."""

from browser import render
from conftest import ROOT, samples_copy

SHOT = ROOT / "tests" / "out" / "report-samples.png"  # tests/out is ignored by git

FIGURES = """JSON.stringify({
  h2: [...document.querySelectorAll('h2')].map(h => h.textContent),
  svgs: [...document.querySelectorAll('svg')].map(s => {
    const r = s.getBoundingClientRect();
    return {label: s.getAttribute('aria-label'), w: r.width, h: r.height,
            marks: s.querySelectorAll('rect').length};
  }),
  rows: document.querySelectorAll('tr').length,
})"""


def test_the_browser_reports_errors_on_a_broken_page(tmp_path):
    """The check itself: a page with a script error and a missing image is not passed."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png"><script>nope()</script></body></html>')
    got = render(page)["problems"]
    assert any(p.startswith("exception:") for p in got), got
    assert any("missing.png" in p for p in got), got


def test_report_renders_in_chromium_with_every_figure(tmp_path, prefect_harness):
    import json

    from testkit.tiny_models import train_tokenizer

    from flows.build import build_flow

    tok = tmp_path / "tokenizer"
    prose = sorted((ROOT / "data" / "samples" / "ja_prose").glob("*.txt"))
    train_tokenizer([line for f in prose for line in f.read_text().splitlines()], tok, vocab_size=512)
    recipe = samples_copy(tmp_path, output={"report_tokenizer": str(tok)})
    build_flow(str(recipe), str(tmp_path / "out"))
    got = render(tmp_path / "out" / "report.html", SHOT, FIGURES)
    assert got["problems"] == []
    page = json.loads(got["value"])
    assert page["h2"][:2] == [
        "Records per source: kept and rejected by reason",
        "Rejects by stage and reason",
    ]
    assert "Length in tokens (" + str(tok) + ") per source and language (log2 bins)" in page["h2"]
    assert {"Language mix of kept rows", "Licence mix of kept rows", "Sample rows"} <= set(page["h2"])
    assert len(page["svgs"]) >= 4 and all(
        s["w"] > 30 and s["h"] > 20 and s["marks"] > 0 for s in page["svgs"]
    )
    assert page["rows"] > 20
    assert SHOT.stat().st_size > 10_000 and SHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
