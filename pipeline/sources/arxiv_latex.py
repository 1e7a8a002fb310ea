"""arXiv LaTeX sources: one .tex file = one record -> a summarization row (body -> abstract).

The abstract comes from the ``abstract`` environment (or ``\\abstract{...}``). The body is the text after
the abstract (or ``\\begin{document}``) with comments, figures, tables and the bibliography removed, cut to
the source's ``max_body_chars``. A file without an abstract or without body text is a reject.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pipeline.records import Row, lineage, reject
from pipeline.sources._io import BASE64_NOTE, raw_text
from pipeline.sources._streams import decode_text, file_encoding, read_all
from pipeline.sources._summarize import summarization_row
from schemas.recipe import SourceSpec

KIND = "arxiv_latex"

_COMMENT = re.compile(r"(?<!\\)%.*")
_ABSTRACT_ENV = re.compile(r"\\begin\{abstract\}(.*?)\\end\{abstract\}", re.S)
_DROP_ENVS = re.compile(
    r"\\begin\{(figure\*?|table\*?|thebibliography|comment|acknowledgments|acknowledgements)\}.*?\\end\{\1\}",
    re.S,
)
_BIB = re.compile(r"\\(bibliography|bibliographystyle|printbibliography)\b(\{[^}]*\})?")
_END = re.compile(r"\\end\{document\}")
_LABEL = re.compile(r"\\(label|vspace|hspace|noindent|maketitle|clearpage|newpage)\b(\{[^}]*\})?")
_BLANKS = re.compile(r"\n{3,}")


def strip_comments(tex: str) -> str:
    return "\n".join(_COMMENT.sub("", line) for line in tex.split("\n"))


def braced(tex: str, start: int) -> tuple[str, int] | None:
    """The balanced {...} group opening at ``tex[start]``: (content, index after it)."""
    if start >= len(tex) or tex[start] != "{":
        return None
    depth = 0
    for i in range(start, len(tex)):
        c = tex[i]
        if c == "\\":
            continue
        if c == "{" and tex[i - 1] != "\\":
            depth += 1
        elif c == "}" and tex[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return tex[start + 1 : i], i + 1
    return None


def split_paper(tex: str) -> tuple[str | None, str]:
    """(abstract or None, body) of a LaTeX paper, comments removed."""
    tex = strip_comments(tex)
    doc = tex.find("\\begin{document}")
    main = tex[doc + len("\\begin{document}") :] if doc >= 0 else tex
    end = _END.search(main)
    if end:
        main = main[: end.start()]
    abstract = None
    m = _ABSTRACT_ENV.search(tex)
    if m:
        abstract = m.group(1)
        body_start = main.find("\\end{abstract}")
        body = main[body_start + len("\\end{abstract}") :] if body_start >= 0 else main
    else:
        pos = tex.find("\\abstract{")
        group = braced(tex, pos + len("\\abstract")) if pos >= 0 else None
        if group:
            abstract = group[0]
        body = main
        if pos >= 0 and doc >= 0 and pos > doc and group:
            body = tex[group[1] :]
            end = _END.search(body)
            body = body[: end.start()] if end else body
    first_section = body.find("\\section")
    if first_section >= 0:
        body = body[first_section:]
    body = _DROP_ENVS.sub("", body)
    appendix = body.find("\\appendix")
    if appendix >= 0:
        body = body[:appendix]
    body = _BIB.sub("", body)
    body = _LABEL.sub("", body)
    body = _BLANKS.sub("\n\n", body).strip()
    if abstract is not None:
        abstract = _LABEL.sub("", abstract)
        abstract = re.sub(r"\s*\n\s*", " ", abstract).strip()
    return abstract or None, body


def read(path: Path, rel: str, spec: SourceSpec, base_dir: Path) -> Iterator[Row]:
    lin = lineage(spec.name, rel, 0, spec.license)
    data = read_all(path)  # .tex, or .tex.gz / .tex.zst (arXiv serves single-file sources gzipped)
    try:
        tex = decode_text(data, file_encoding(path))
    except UnicodeDecodeError as err:
        yield reject(lin, "parse", "bad_encoding", f"{err}; {BASE64_NOTE}", raw_text(data))
        return
    abstract, body = split_paper(tex)
    if abstract is None:
        yield reject(lin, "parse", "no_abstract", "no abstract environment or \\abstract{}", tex)
    elif not body:
        yield reject(lin, "parse", "no_body", "no text after the abstract", tex)
    else:
        yield summarization_row(lin, body, abstract, spec.max_body_chars, {"file": path.name})
