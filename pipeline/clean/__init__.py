"""Cleaning: normalisation, language id and the filters (each answers keep, or a reason)."""
