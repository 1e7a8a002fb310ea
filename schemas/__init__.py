"""Data contracts: Arrow schemas of every table, the recipe model and the manifest model.

Every column of every table is defined once, in :mod:`schemas.columns`.
"""

from schemas.columns import (
    CHAT_SCHEMA,
    INSTRUCT_SCHEMA,
    REJECT_SCHEMA,
    SCHEMA_VERSION,
    TABLE_SCHEMAS,
    TEXT_SCHEMA,
)
from schemas.manifest import Manifest
from schemas.recipe import Recipe, RecipeError, SourceSpec, load_recipe

__all__ = [
    "CHAT_SCHEMA",
    "INSTRUCT_SCHEMA",
    "REJECT_SCHEMA",
    "SCHEMA_VERSION",
    "TEXT_SCHEMA",
    "TABLE_SCHEMAS",
    "Manifest",
    "Recipe",
    "RecipeError",
    "SourceSpec",
    "load_recipe",
]
