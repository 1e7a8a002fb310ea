"""Duplicate detection across all sources of a build."""
