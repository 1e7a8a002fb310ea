"""Synthetic instruction data: prompts, backends (vLLM, transformers), filters, the self-instruct loop."""
