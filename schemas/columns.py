"""Arrow schemas of the tables a build writes: instruction rows, text rows, chat rows, reject rows.

Every row, kept or rejected, carries the lineage columns. ``generation`` is a JSON string (null for
human-written data) so that one schema serves every generator; ``meta`` and ``record`` are JSON too.
A chat row's ``messages`` is a list of {role, content} structs, role one of ``ROLES``.
"""

import pyarrow as pa

SCHEMA_VERSION = "1.0"

ID = pa.field("id", pa.string(), nullable=False)
SOURCE = pa.field("source", pa.string(), nullable=False)
SOURCE_FILE = pa.field("source_file", pa.string(), nullable=False)
SOURCE_INDEX = pa.field("source_index", pa.int64(), nullable=False)
LICENSE = pa.field("license", pa.string(), nullable=False)
LANG = pa.field("lang", pa.string())

LINEAGE = [ID, SOURCE, SOURCE_FILE, SOURCE_INDEX, LICENSE, LANG]
LINEAGE_NAMES = tuple(f.name for f in LINEAGE)  # every row, kept or rejected, carries these
# the columns with few distinct values (a source, a licence, a language, a reason): the work directory's
# Parquet files dictionary-encode these alone (an id or a text column's dictionary is as large as the column)
FEW_VALUES = ("source", "source_file", "license", "lang", "task", "table", "stage", "reason")

INSTRUCT_SCHEMA = pa.schema(
    LINEAGE
    + [
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("output", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("generation", pa.string()),
        pa.field("meta", pa.string()),
    ],
    metadata={"schema_version": SCHEMA_VERSION, "table": "instruct"},
)

TEXT_SCHEMA = pa.schema(
    LINEAGE
    + [
        pa.field("text", pa.string(), nullable=False),
        pa.field("meta", pa.string()),
    ],
    metadata={"schema_version": SCHEMA_VERSION, "table": "text"},
)

ROLES = ("system", "user", "assistant")
MESSAGE = pa.struct([pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string(), nullable=False)])

CHAT_SCHEMA = pa.schema(
    LINEAGE
    + [
        pa.field("messages", pa.list_(pa.field("item", MESSAGE, nullable=False)), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("generation", pa.string()),
        pa.field("meta", pa.string()),
    ],
    metadata={"schema_version": SCHEMA_VERSION, "table": "chat"},
)

REJECT_SCHEMA = pa.schema(
    LINEAGE
    + [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("duplicate_of", pa.string()),
        pa.field("record", pa.string(), nullable=False),
    ],
    metadata={"schema_version": SCHEMA_VERSION, "table": "rejects"},
)

TABLE_SCHEMAS = {"instruct": INSTRUCT_SCHEMA, "text": TEXT_SCHEMA, "chat": CHAT_SCHEMA, "rejects": REJECT_SCHEMA}
DATA_TABLES = ("instruct", "text", "chat")  # the tables of kept rows, in the order a unit keeps them
