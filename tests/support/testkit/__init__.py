"""Test support shared by tests/ and benchmarks/: ``tiny_models`` (random models, a tokenizer trained
on the samples, a few steps that teach an answer or a loop) and ``planted`` (the near-duplicate set)."""
