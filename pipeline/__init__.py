"""instruct-pipeline: the library. Pure, testable stages over records; no Prefect imports here."""

__version__ = "0.1.0"
