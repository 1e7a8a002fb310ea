"""The dataset card (DIR/README.md) with the Hugging Face YAML header: license, language, configs."""

from __future__ import annotations

from collections import Counter

import yaml

from schemas.manifest import Manifest


def dataset_card(manifest: Manifest, licenses: Counter, languages: Counter) -> str:
    configs = []
    for table in ("instruct", "text", "rejects"):
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
    lines += ["", "## Licences of kept rows", "", "| licence | rows |", "|---|---:|"]
    lines += [f"| {k} | {licenses[k]} |" for k in lic]
    lines += ["", "## Languages of kept rows", "", "| language | rows |", "|---|---:|"]
    lines += [f"| {k} | {languages[k]} |" for k in sorted(languages)]
    return "\n".join(lines) + "\n"


def _split_order(split: str) -> tuple[int, str]:
    return ({"train": 0, "validation": 1}.get(split, 2), split)
