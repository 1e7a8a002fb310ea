"""Resumable builds: the unit store (``.NAME.work/``, finished units keyed by what they depend on) and
the units of a build (read+clean per input file, exact dedup, near dedup)."""
