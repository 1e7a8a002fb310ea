"""The cleaning stage runner: repair and normalise, mask PII, detect language, apply the license policy and
the filters.

Repairs, in order (each can be switched off with ``clean.skip``, as can every filter):
``mojibake`` (UTF-8 read as Latin-1/cp1252, pipeline.text.mojibake), normalisation (always),
``placeholder_input`` ("<noinput>", "No input", "入力なし" become ""), ``escapes`` (literal ``\\uXXXX`` and
``\\n`` in rows not about code), ``pii`` (typed placeholders, pipeline.text.pii). Their counts go beside
the filters' (``repair:<name>``, ``pii:<TYPE>``: manifest ``stages``), and a row they changed keeps its
original fields for a later reject — with PII masked there too, so no PII reaches the output directory; the
same goes for a reader's parse rejects (the raw line, or its bytes), encoding and licence rejects.

Per-filter counts are collected here, not in the filters. A filter that raises rejects the row (reason
``filter_error:<name>``) instead of stopping the run; the exception text goes to ``detail``.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Iterator

from pipeline.clean.filters import FILTERS, Filter, FilterContext
from pipeline.clean.normalize import TEXT_KEYS, map_text, normalize_row
from pipeline.errors import PipelineError
from pipeline.records import BASE64_NOTE, ORIGINAL, Row, is_reject, lone_surrogate_field, record_text, reject
from pipeline.text.instruct import code_row, placeholder_input, repair_escapes
from pipeline.text.langid import detect, detect_fast
from pipeline.text.mojibake import fix_mojibake
from pipeline.text.pii import mask_pii
from schemas.columns import LINEAGE_NAMES
from schemas.recipe import LicensePolicy, Recipe


def license_reason(license: str, policy: LicensePolicy | None) -> str | None:
    if policy is None:
        return None
    lic = license.lower()
    if lic in {x.lower() for x in policy.deny}:
        return f"license_denied:{license}"
    if policy.allow is not None and lic not in {x.lower() for x in policy.allow}:
        return f"license_not_allowed:{license}"
    return None


REPAIRS = ("mojibake", "placeholder_input", "escapes", "pii")


def check_skip(recipe: Recipe) -> None:
    """A ``clean.skip`` entry that names no filter and no repair stops the run before it starts."""
    known = set(REPAIRS) | {f.name for f in FILTERS}
    bad = [x for x in recipe.clean.skip if x not in known]
    if bad:
        raise PipelineError(
            f"recipe key 'clean.skip': unknown rule {bad[0]!r} (known: {', '.join(sorted(known))})"
        )


class CleanStage:
    """Callable over an iterable of rows (data rows and earlier rejects); yields rows and rejects."""

    def __init__(
        self,
        ctx: FilterContext,
        license_policy: LicensePolicy | None = None,
        filters: list[Filter] | None = None,
    ):
        self.ctx = ctx
        self.license_policy = license_policy
        skip = set(ctx.clean.skip)
        self.filters = [f for f in (FILTERS if filters is None else filters) if f.name not in skip]
        self.repairs = frozenset(REPAIRS) - skip
        self.counts: Counter[str] = Counter()  # "filter_name:reason" -> rows rejected; repairs and PII
        self.pii_found = False

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> CleanStage:
        return cls(FilterContext(recipe.clean, frozenset(recipe.languages)), recipe.license_policy)

    def __call__(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            if is_reject(row):  # a reader's parse reject: its record with PII masked
                yield self.masked_reject(row) if "pii" in self.repairs else row
                continue
            yield self.clean_one(row)

    def masked_reject(self, row: Row) -> Row:
        """A parse reject whose record (the raw line, or its bytes in base64) has its PII masked; the rest of
        the record stays byte for byte."""
        record, found = row["record"], Counter()
        if (row.get("detail") or "").endswith(BASE64_NOTE):
            text = base64.b64decode(record).decode("utf-8", "surrogateescape")
            masked = mask_pii(text, found)
            if found:
                record = base64.b64encode(masked.encode("utf-8", "surrogateescape")).decode("ascii")
        else:
            record = mask_pii(record, found)
        if not found:
            return row
        self.counts.update({f"pii:{kind}": n for kind, n in found.items()})
        return {**row, "record": record}

    def clean_one(self, row: Row) -> Row:
        original = {k: v for k, v in row.items() if k not in LINEAGE_NAMES}
        bad = lone_surrogate_field(row)
        if bad:  # e.g. an arXiv abstract from metadata with "\ud800": no Parquet file can hold it
            self.counts["encoding:bad_encoding"] += 1
            return reject(row, "parse", "bad_encoding", f"lone surrogate in {bad}", self.early_record(original))
        lic = license_reason(row["license"], self.license_policy)
        if lic:
            self.counts[f"license:{lic}"] += 1
            keep = self.license_policy.keep_rejected_text  # see LicensePolicy
            return reject(row, "license", lic.split(":")[0], row["license"], self.early_record(original) if keep else "")
        norm = self.repair(row)
        if self.pii_found:
            original = self.masked(original)
        text = record_text(norm)
        fast = detect_fast(text)
        norm["lang"] = fast or "und"
        for f in self.filters:
            if f.needs_lang and fast is None:  # the slow part of language id, only for rows still kept
                norm["lang"] = fast = detect(text)
            try:
                verdict = f.check(norm, self.ctx)
            except Exception as err:  # a broken filter rejects the row, never the run
                verdict = (f"filter_error:{f.name}", f"{type(err).__name__}: {err}")
            if verdict:
                reason, detail = (verdict, None) if isinstance(verdict, str) else verdict
                self.counts[f"{f.name}:{reason}"] += 1
                return reject(norm, "filter", reason, detail, original)
        if any(norm.get(k) != row.get(k) for k in TEXT_KEYS):
            norm[ORIGINAL] = original  # what a later reject (a duplicate) must keep verbatim
        return norm

    def repair(self, row: Row) -> Row:
        """The row repaired and normalised (a new dict); sets ``pii_found``."""
        on = self.repairs
        if "mojibake" in on:
            fixed = map_text(row, fix_mojibake)
            if any(fixed.get(k) != row.get(k) for k in TEXT_KEYS):
                self.counts["repair:mojibake"] += 1
                row = fixed
        norm = normalize_row(row)
        if "instruction" in norm:
            if "placeholder_input" in on and norm["input"] and placeholder_input(norm["input"]):
                self.counts["repair:placeholder_input"] += 1
                norm["input"] = ""
            if "escapes" in on and "\\" in (norm["instruction"] + norm["input"] + norm["output"]):
                if not code_row(norm["instruction"], norm["input"], norm["output"]):
                    fixed = {k: repair_escapes(norm[k]) for k in ("instruction", "input", "output")}
                    if any(fixed[k] != norm[k] for k in fixed):
                        self.counts["repair:escapes"] += 1
                        norm.update(fixed)
        self.pii_found = False
        if "pii" in on:
            found: Counter[str] = Counter()
            norm = map_text(norm, lambda v: mask_pii(v, found))
            if found:
                self.pii_found = True
                self.counts.update({f"pii:{kind}": n for kind, n in found.items()})
        return norm

    def early_record(self, original: Row) -> Row:
        """The original fields of a row rejected before the repairs, PII masked (and counted) when PII
        masking is on."""
        if "pii" not in self.repairs:
            return original
        found: Counter[str] = Counter()
        masked = map_text(original, lambda v: mask_pii(v, found))
        self.counts.update({f"pii:{kind}": n for kind, n in found.items()})
        return masked

    @staticmethod
    def masked(fields: Row) -> Row:
        """A row's original fields with PII masked (what its reject may keep)."""
        return map_text(fields, mask_pii)
