"""Prefect flows: orchestration only; every step calls pipeline/."""
