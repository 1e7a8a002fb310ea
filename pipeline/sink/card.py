"""The dataset card (DIR/README.md) with the Hugging Face YAML header: license, language, configs."""

from __future__ import annotations

from collections import Counter

import yaml

from pipeline.licenses import duties, no_derivatives
from schemas.columns import DATA_TABLES
from schemas.manifest import Manifest


def dataset_card(manifest: Manifest, licenses: Counter, languages: Counter, tasks: Counter | None = None) -> str:
    """The card: YAML header (licence, languages, one config per table) and tables of counts, licences
    with the duties each carries, and languages. ``tasks``: (licence, task) -> kept rows, for the note on
    no-derivatives licences over summarisation or translation rows."""
    configs = []
    for table in (*DATA_TABLES, "rejects"):
        splits = sorted({s.split or "rejects" for s in manifest.shards if s.table == table}, key=_split_order)
        if not splits:
            continue
        data_files = [
            {
                "split": split,
                "path": f"{table}/{split}-*.parquet" if table != "rejects" else "rejects/rejects-*.parquet",
            }
            for split in splits
        ]
        configs.append({"config_name": table, "data_files": data_files})
    lic = sorted(licenses)
    header = {
        "license": lic[0] if len(lic) == 1 else "other",
        "language": sorted(languages) or ["und"],
        "configs": configs,
        "tags": ["instruction-tuning", "instruct-pipeline"],
    }
    if len(lic) > 1:
        header["license_name"] = "mixed"
        header["license_details"] = "per-row `license` column: " + ", ".join(lic)
    lines = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    lines += [
        f"# {manifest.name}",
        "",
        "Built by instruct-pipeline. Every row carries its lineage: `id`, `source`,",
    ]
    lines += [
        "`source_file`, `source_index`, `license`, `lang`. Rejected records, with their reason, are in the"
    ]
    lines += ["`rejects` config. The licence is per row; respect each row's licence.", ""]
    lines += ["## Counts", "", "| source | read | kept | rejected |", "|---|---:|---:|---:|"]
    for name, c in manifest.counts.items():
        lines.append(f"| {name} | {c.read} | {c.kept} | {sum(c.rejected.values())} |")
    lines += ["", "## Licences of kept rows", "", "| licence | rows | duties |", "|---|---:|---|"]
    lines += [f"| {_cell(k)} | {licenses[k]} | {_cell(duties(k)) or 'not known: check the source'} |" for k in lic]
    derived = sorted(
        (k, t, n) for (k, t), n in (tasks or {}).items() if no_derivatives(k) and t in DERIVED_TASKS
    )
    if derived:
        lines += ["", "No-derivatives licences on rows whose target is made from the work (a summary or a"]
        lines += ["translation is an adaptation): whether training on them, or shipping them, is allowed is a"]
        lines += ["question for the rights holder or a lawyer, not answered here.", ""]
        lines += [f"- {_cell(k)}: {n} {t} rows" for k, t, n in derived]
    lines += ["", "## Languages of kept rows", "", "| language | rows |", "|---|---:|"]
    lines += [f"| {k} | {languages[k]} |" for k in sorted(languages)]
    return "\n".join(lines) + "\n"


DERIVED_TASKS = ("summarization", "translation")


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, no line breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def _split_order(split: str) -> tuple[int, str]:
    return ({"train": 0, "validation": 1}.get(split, 2), split)
