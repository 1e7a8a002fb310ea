"""Run the vLLM backend (CPU build in tests) on a model dir and print completions as JSON lines.

    python tests/vllm_generate.py MODEL_DIR INSTRUCTION [INSTRUCTION ...]

vLLM starts its engine in a spawned process, hence the __main__ guard.
"""

import json
import sys

if __name__ == "__main__":
    from pipeline.generate.backends import Sampling, VLLMBackend
    from pipeline.generate.templates import STOP, render

    backend = VLLMBackend(sys.argv[1], dtype="float32", seed=0, max_model_len=512)
    prompts = [render("dolly", x, "", "ja") for x in sys.argv[2:]]
    for c in backend.generate(prompts, Sampling(temperature=0.0, max_new_tokens=120), 0, STOP["dolly"]):
        print(
            "COMPLETION "
            + json.dumps(
                {"text": c.text, "finish_reason": c.finish_reason, "tokens": c.tokens}, ensure_ascii=False
            )
        )
