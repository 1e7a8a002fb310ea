"""The cleaning stage runner: normalise, detect language, apply the license policy and the filters.

Per-filter counts are collected here, not in the filters. A filter that raises rejects the row (reason
``filter_error:<name>``) instead of stopping the run; the exception text goes to ``detail``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from pipeline.clean.filters import FILTERS, Filter, FilterContext
from pipeline.clean.normalize import TEXT_FIELDS, normalize_row
from pipeline.records import ORIGINAL, Row, is_reject, lone_surrogate_field, record_text, reject
from pipeline.text.langid import detect, detect_fast
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
        self.filters = FILTERS if filters is None else filters
        self.counts: Counter[str] = Counter()  # "filter_name:reason" -> rows rejected

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> CleanStage:
        return cls(FilterContext(recipe.clean, frozenset(recipe.languages)), recipe.license_policy)

    def __call__(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            if is_reject(row):
                yield row
                continue
            yield self.clean_one(row)

    def clean_one(self, row: Row) -> Row:
        original = {k: v for k, v in row.items() if k not in LINEAGE_NAMES}
        bad = lone_surrogate_field(row)
        if bad:  # e.g. an arXiv abstract from metadata with "\ud800": no Parquet file can hold it
            self.counts["encoding:bad_encoding"] += 1
            return reject(row, "parse", "bad_encoding", f"lone surrogate in {bad}", original)
        lic = license_reason(row["license"], self.license_policy)
        if lic:
            self.counts[f"license:{lic}"] += 1
            record = original if self.license_policy.keep_rejected_text else ""  # see LicensePolicy
            return reject(row, "license", lic.split(":")[0], row["license"], record)
        norm = normalize_row(row)
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
        if any(norm.get(k) != row.get(k) for k in TEXT_FIELDS):
            norm[ORIGINAL] = original  # what a later reject (a duplicate) must keep verbatim
        return norm
