"""Licence names: a record's own licence (often a URL, as in arXiv metadata) as an SPDX-style id, and the
duties each licence puts on a user of the rows (for the dataset card).

``licence_id`` maps Creative Commons URLs to their SPDX ids (``CC-BY-4.0``, ``CC-BY-NC-ND-4.0``,
``CC0-1.0``, ...) and arXiv's own licences to explicit ids (``arxiv-nonexclusive-distrib-1.0``,
``arxiv-assumed-1991-2003``); anything else is kept as given, so a licence is never lost or guessed.
Policies (``license_policy.allow`` / ``deny``) compare ids case-insensitively.
"""

from __future__ import annotations

import re

_CC = re.compile(
    r"^(?:https?://)?(?:www\.)?creativecommons\.org/licenses/"
    r"(?P<kind>by(?:-nc)?(?:-sa|-nd)?)/(?P<version>\d(?:\.\d)?)(?:/[a-z.-]*)?/?$"
)
_CC0 = re.compile(r"^(?:https?://)?(?:www\.)?creativecommons\.org/publicdomain/zero/1\.0/?(?:legalcode)?/?$")
_ARXIV = re.compile(r"^(?:https?://)?(?:www\.)?arxiv\.org/licenses/(?P<name>[a-z0-9.-]+?)(?:/(?P<version>\d\.\d))?/?(?:license\.html)?$")


def licence_id(value: str) -> str:
    """An SPDX-style id for a licence string or URL; unknown strings come back stripped, as they are."""
    text = value.strip()
    low = text.lower()
    if m := _CC.match(low):
        return f"CC-{m['kind'].upper()}-{m['version']}"
    if _CC0.match(low):
        return "CC0-1.0"
    if m := _ARXIV.match(low):
        return f"arxiv-{m['name']}" + (f"-{m['version']}" if m["version"] else "")
    return text


# duties by licence id, lower case; Creative Commons ids are read from their parts (by, sa, nc, nd)
_NAMED = {
    "arxiv-nonexclusive-distrib-1.0": "arXiv's non-exclusive distribution licence: arXiv may distribute the "
    "paper, no one else is granted any right; ask the authors before redistributing or deriving",
    "arxiv-assumed-1991-2003": "arXiv's assumed licence for old papers: as non-exclusive distribution",
    "mit": "keep the copyright and licence notice",
    "apache-2.0": "keep the licence and notices; state changes",
    "odc-by": "attribution (Open Data Commons)",
    "cc0-1.0": "none (public domain dedication)",
    "unknown": "unknown: check the source before use",
}


def duties(licence: str) -> str:
    """What a user of rows under ``licence`` must do, in words ('' when we do not know the licence)."""
    low = licence.lower()
    if low in _NAMED:
        return _NAMED[low]
    m = re.match(r"^cc-(by(?:-nc)?(?:-sa|-nd)?)-\d(?:\.\d)?$", low)
    if not m:
        return ""
    parts = m[1].split("-")
    out = ["attribution"]
    if "nc" in parts:
        out.append("non-commercial use only")
    if "sa" in parts:
        out.append("share-alike (derivatives under the same licence)")
    if "nd" in parts:
        out.append("no derivatives")
    return ", ".join(out)


def no_derivatives(licence: str) -> bool:
    """An ND licence: a summary, translation or other adaptation of the work is a derivative question."""
    return bool(re.match(r"^cc-by(?:-nc)?-nd-", licence.lower()))
