"""LoRA trainer stage: build shards -> tokenised, masked, packed batches -> a PEFT adapter; memory planner."""
