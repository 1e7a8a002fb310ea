"""Generation backends behind one small interface: ``generate(prompts, sampling, seed, stop)``.

- ``vllm``: the offline engine (``vllm.LLM``), whole batches per call, ``tensor_parallel_size`` for two
  GPUs; loops are stopped in the engine by its repetition detection (token n-gram repeated at the tail).
- ``transformers``: batched ``generate`` with a StoppingCriteria that ends each sequence at a stop
  string or at the first repeat of a token pattern (the same detector, pipeline.text.repetition).
Both then cut the text at the stop string and at the first repeat of a character pattern, and report
finish_reason ``stop``, ``length`` or ``loop``. A vLLM engine starts worker processes: build it under
``if __name__ == "__main__":``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.generate.templates import cut_at_stop
from pipeline.text.repetition import GUARD_CHARS, GUARD_TOKENS, cut_loop, periodic_tail

BACKENDS = ("vllm", "transformers")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.92
    max_new_tokens: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # stop | length | loop
    tokens: int  # generated tokens (before cutting)


def finish(text: str, stops: list[str], hit_length: bool, engine_loop: bool, tokens: int) -> Completion:
    """Cut at the stop string, then at the first repeat of a character pattern; name why it ended."""
    text, stopped = cut_at_stop(text, stops)
    cut, period = cut_loop(text.rstrip(), **GUARD_CHARS)
    if period is not None or (engine_loop and not stopped):  # a loop after the stop string is not kept
        return Completion(cut.strip(), "loop", tokens)
    if stopped:
        return Completion(text.strip(), "stop", tokens)
    return Completion(text.strip(), "length" if hit_length else "stop", tokens)


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str, dtype: str = "float32", device: str | None = None, state: str | None = None):
        """``state``: an RWKV-4 initial state (a train run's state.safetensors, or its folder) to start from."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.model_id = model
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(self.device)
        self.model.eval()
        if self.model.config.model_type == "rwkv":
            from pipeline.rwkv.wkv import resolve, use_wkv

            use_wkv(resolve("auto", torch.device(self.device).type))
            if state:
                from pipeline.rwkv.state import load

                load(self.model, state)
        elif state:
            raise ValueError(f"{model}: an initial state is for RWKV-4 models, not {self.model.config.model_type}")

    def generate(
        self, prompts: list[str], sampling: Sampling, seed: int, stops: list[str]
    ) -> list[Completion]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch, tok = self.torch, self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True).to(self.device)
        start = enc["input_ids"].shape[1]
        looped = [False] * len(prompts)

        class Guard(StoppingCriteria):
            """Per sequence: a stop string, or the first repeat of a token pattern, ends it."""

            def __call__(self, input_ids, scores, **kwargs):
                done = []
                for i, ids in enumerate(input_ids[:, start:].tolist()):
                    tail = tok.decode(ids[-32:], skip_special_tokens=True)
                    if any(s in tail for s in stops):
                        done.append(True)
                    elif periodic_tail(ids, **GUARD_TOKENS) is not None:
                        looped[i] = True
                        done.append(True)
                    else:
                        done.append(False)
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                do_sample=sampling.temperature > 0,
                temperature=sampling.temperature if sampling.temperature > 0 else None,
                top_p=sampling.top_p if sampling.temperature > 0 else None,
                max_new_tokens=sampling.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([Guard()]),
                pad_token_id=tok.pad_token_id,
            )
        results = []
        for i, seq in enumerate(out[:, start:].tolist()):
            if tok.eos_token_id in seq:
                seq = seq[: seq.index(tok.eos_token_id)]
                hit_length = False
            else:
                hit_length = len(seq) >= sampling.max_new_tokens
            text = tok.decode(seq, skip_special_tokens=True)
            results.append(finish(text, stops, hit_length, looped[i], len(seq)))
        return results


class VLLMBackend:
    name = "vllm"

    def __init__(
        self, model: str, tensor_parallel_size: int = 1, dtype: str = "auto", seed: int = 0, **engine
    ):
        from vllm import LLM

        self.model_id = model
        engine.setdefault("enforce_eager", True)
        self.llm = LLM(
            model=model,
            tokenizer=model,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            **engine,
        )

    def generate(
        self, prompts: list[str], sampling: Sampling, seed: int, stops: list[str]
    ) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.sampling_params import RepetitionDetectionParams

        guard = RepetitionDetectionParams(
            min_pattern_size=GUARD_TOKENS["min_size"],
            max_pattern_size=GUARD_TOKENS["max_size"],
            min_count=GUARD_TOKENS["min_count"],
        )
        params = [
            SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
                max_tokens=sampling.max_new_tokens,
                stop=stops,
                seed=seed * 1_000_003 + i,
                repetition_detection=guard,
            )
            for i in range(len(prompts))
        ]
        results = []
        for out in self.llm.generate(prompts, params, use_tqdm=False):
            o = out.outputs[0]
            reason = str(o.finish_reason)
            looped = reason == "repetition" or o.stop_reason == "repetition_detected"
            results.append(finish(o.text, [], reason == "length", looped, len(o.token_ids)))
        return results


def load_backend(name: str, model: str, **kwargs):
    if name == "transformers":
        return TransformersBackend(model, **{k: v for k, v in kwargs.items() if k in ("dtype", "device", "state")})
    if name == "vllm":
        return VLLMBackend(model, **kwargs)
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
