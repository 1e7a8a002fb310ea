"""Text helpers that clean/, dedup/ and generate/ share: normalisation (the dedup key, folded text,
signature text), language id and the repetition detector. Pure functions over strings; they know
nothing of rows, files or stages, and import nothing else of the pipeline."""
