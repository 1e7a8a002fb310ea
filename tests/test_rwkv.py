"""RWKV-4: the fla Triton WKV op against transformers' loop (CPU, TRITON_INTERPRET=1), BlinkDL .pth
checkpoints in and out against ChatRWKV's ``rwkv`` package, and state tuning."""

import json
import os

import pytest
import torch
from conftest import cpu_train_spec
from typer.testing import CliRunner

# A BlinkDL RWKV-4 state dict's names, written out here (not taken from pipeline/rwkv) so the import is
# checked against the format, not against itself: (BlinkDL, transformers) per block, then the rest.
BLOCK_NAMES = [
    ("ln1.weight", "ln1.weight"),
    ("ln1.bias", "ln1.bias"),
    ("ln2.weight", "ln2.weight"),
    ("ln2.bias", "ln2.bias"),
    ("att.time_decay", "attention.time_decay"),
    ("att.time_first", "attention.time_first"),
    ("att.time_mix_k", "attention.time_mix_key"),
    ("att.time_mix_v", "attention.time_mix_value"),
    ("att.time_mix_r", "attention.time_mix_receptance"),
    ("att.key.weight", "attention.key.weight"),
    ("att.value.weight", "attention.value.weight"),
    ("att.receptance.weight", "attention.receptance.weight"),
    ("att.output.weight", "attention.output.weight"),
    ("ffn.time_mix_k", "feed_forward.time_mix_key"),
    ("ffn.time_mix_r", "feed_forward.time_mix_receptance"),
    ("ffn.key.weight", "feed_forward.key.weight"),
    ("ffn.receptance.weight", "feed_forward.receptance.weight"),
    ("ffn.value.weight", "feed_forward.value.weight"),
]
TOP_NAMES = [
    ("emb.weight", "rwkv.embeddings.weight"),
    ("blocks.0.ln0.weight", "rwkv.blocks.0.pre_ln.weight"),
    ("blocks.0.ln0.bias", "rwkv.blocks.0.pre_ln.bias"),
    ("ln_out.weight", "rwkv.ln_out.weight"),
    ("ln_out.bias", "rwkv.ln_out.bias"),
    ("head.weight", "head.weight"),
]
PROMPT = [5, 6, 7, 8, 9, 10, 11, 12]


def blinkdl_state_dict(model) -> dict:
    hf = model.state_dict()
    out = {b: hf[t] for b, t in TOP_NAMES}
    for i in range(model.config.num_hidden_layers):
        out.update({f"blocks.{i}.{b}": hf[f"rwkv.blocks.{i}.{t}"] for b, t in BLOCK_NAMES})
    assert len(out) == len(hf)
    return out


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


# --- the WKV op -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "b, t, c, decay, key_scale",
    [
        (2, 16, 8, 1.0, 1.0),  # the small case
        (1, 1024, 37, 1.0, 1.0),  # a long sequence; C not a multiple of the kernel's block (32)
        (2, 48, 130, 8.0, 60.0),  # extreme decays (time_decay in [-8, 8]) and large keys (|k| up to 60)
    ],
)
def test_fla_op_matches_transformers_loop_outputs_and_gradients(interpret, b, t, c, decay, key_scale):
    from transformers.models.rwkv.modeling_rwkv import rwkv_linear_attention_cpu

    from pipeline.rwkv.wkv import fla_wkv

    g = torch.Generator().manual_seed(t + c)
    w = (torch.rand(c, generator=g) * 2 - 1) * decay
    u = torch.randn(c, generator=g)
    k = (torch.rand(b, t, c, generator=g) * 2 - 1) * key_scale
    v = torch.randn(b, t, c, generator=g)
    s0 = [torch.randn(b, c, generator=g), torch.rand(b, c, generator=g) + 0.5, torch.randn(b, c, generator=g)]
    got = []
    for op in (rwkv_linear_attention_cpu, fla_wkv):
        leaves = [x.clone().requires_grad_() for x in (w, u, k, v, *s0)]
        out, state = op(*leaves[:4], state=list(leaves[4:]), return_state=True)
        loss = out.sin().sum() + sum(((i + 1) * s).cos().sum() for i, s in enumerate(state))
        loss.backward()
        got.append([out, *state, *(x.grad for x in leaves)])
    names = [
        "out",
        "num",
        "den",
        "max",
        "d_decay",
        "d_first",
        "d_key",
        "d_value",
        "d_num0",
        "d_den0",
        "d_max0",
    ]
    errs = {n: rel_err(f, r) for n, r, f in zip(names, got[0], got[1], strict=True)}
    assert max(errs.values()) < 1e-4, errs
    assert got[1][4].abs().sum() > 0 and got[1][8].abs().sum() > 0  # the gradients are there at all


def test_fla_op_without_a_state_matches_and_keeps_bf16_inputs(interpret):
    from transformers.models.rwkv.modeling_rwkv import rwkv_linear_attention_cpu

    from pipeline.rwkv.wkv import fla_wkv

    g = torch.Generator().manual_seed(1)
    w, u = torch.randn(40, generator=g), torch.randn(40, generator=g)
    k, v = torch.randn(2, 20, 40, generator=g), torch.randn(2, 20, 40, generator=g)
    ref, none = rwkv_linear_attention_cpu(w, u, k, v)
    out, state = fla_wkv(w, u, k, v)
    assert none is None and state is None and rel_err(out, ref) < 1e-5
    out16, state16 = fla_wkv(w, u, k.bfloat16(), v.bfloat16(), return_state=True)
    assert out16.dtype == torch.bfloat16 and all(s.dtype == torch.float32 for s in state16)
    assert rel_err(out16.float(), ref) < 2e-2  # bf16 inputs: about 3 significant digits


def test_fla_op_choice_and_its_errors(monkeypatch):
    from pipeline.errors import PipelineError
    from pipeline.rwkv.wkv import resolve

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert resolve("auto", "cpu") == "transformers" and resolve("transformers", "cuda") == "transformers"
    with pytest.raises(PipelineError) as err:
        resolve("fla", "cpu")
    assert str(err.value) == (
        "train.wkv: fla on cpu: its Triton kernel runs on CPU only under TRITON_INTERPRET=1 (slow: for tests)"
    )
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve("fla", "cpu") == "fla" and resolve("auto", "cpu") == "transformers"


def test_planning_then_an_interpreted_run_and_a_late_interpreter_switch(tmp_path):
    """The planner (first in a train flow) does not import fla, so a later interpreted run works; and
    TRITON_INTERPRET=1 set only after triton was imported is refused with a clear message (triton decides at
    import whether its own jit functions are interpreted)."""
    import subprocess
    import sys

    plan_then_run = (
        "import torch\n"
        "from transformers import RwkvConfig\n"
        "from pipeline.train.planner import saved_activation_bytes\n"
        "from schemas.recipe import TrainSpec\n"
        "cfg = RwkvConfig(hidden_size=32, num_hidden_layers=2, vocab_size=64, context_length=64)\n"
        "saved_activation_bytes(cfg, TrainSpec(model='m', dataset='d', seq_len=16, micro_batch=1))\n"
        "from pipeline.rwkv.wkv import fla_wkv\n"
        "x = [t.requires_grad_() for t in (torch.zeros(8), torch.zeros(8), torch.ones(1, 3, 8), torch.ones(1, 3, 8))]\n"
        "out, _ = fla_wkv(*x)\n"
        "out.sum().backward()\n"
        "print(out.shape)\n"
    )
    late = (
        "import os\n"
        "import transformers.models.rwkv.modeling_rwkv\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "from pipeline.errors import PipelineError\n"
        "from pipeline.rwkv.wkv import resolve\n"
        "try:\n"
        "    resolve('fla', 'cpu')\n"
        "except PipelineError as err:\n"
        "    print(err)\n"
    )
    base = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    for code, env, want in (
        (plan_then_run, {**base, "TRITON_INTERPRET": "1"}, "torch.Size([1, 3, 8])"),
        (
            late,
            base,
            "train.wkv: fla on cpu: TRITON_INTERPRET=1 was set after triton was imported: set it before "
            "the process starts",
        ),
    ):
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
        )
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.strip() == want


def test_rwkv_model_logits_equal_with_either_op(interpret, tiny):
    from transformers import AutoModelForCausalLM

    from pipeline.rwkv.wkv import wkv

    model = AutoModelForCausalLM.from_pretrained(tiny["rwkv"]).eval()
    ids = torch.tensor([PROMPT, PROMPT[::-1]])
    with torch.no_grad():
        with wkv("transformers"):
            ref = model(input_ids=ids).logits
        with wkv("fla"):
            got = model(input_ids=ids).logits
            cached = model(input_ids=ids, use_cache=True)  # a state out, then one more token with it
            step = model(input_ids=ids[:, :1], state=cached.state, use_cache=True).logits
        with wkv("transformers"):
            ref_state = model(input_ids=ids, use_cache=True).state
            ref_step = model(input_ids=ids[:, :1], state=ref_state, use_cache=True).logits
    assert rel_err(got, ref) < 1e-5 and rel_err(step, ref_step) < 1e-5


# --- training with the op, the log's last step, state tuning ---------------------------------------------


def log_of(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_tiny_rwkv_lora_same_losses_with_either_op(interpret, tiny, small_build, tmp_path):
    from pipeline.train.trainer import train

    runs = {}
    for op in ("transformers", "fla"):
        spec = cpu_train_spec(wkv=op, micro_batch=1, max_steps=2, logging_steps=1)
        run = train(spec, tmp_path / op, str(tiny["rwkv"]), small_build)
        assert run["wkv"] == op and run["steps"] == 2
        runs[op] = log_of(tmp_path / op)
    assert [x["step"] for x in runs["fla"]] == [1, 2]
    assert all(x["tokens_per_s"] > 0 for x in runs["fla"])
    for a, b in zip(runs["transformers"], runs["fla"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_the_last_step_is_logged_when_not_a_multiple_of_logging_steps(tiny, small_build, tmp_path):
    from pipeline.train.trainer import train

    train(cpu_train_spec(max_steps=3, logging_steps=2), tmp_path, str(tiny["gpt_neox"]), small_build)
    assert [x["step"] for x in log_of(tmp_path)] == [2, 3]


def test_a_run_shorter_than_logging_steps_still_logs(tiny, small_build, tmp_path):
    from pipeline.train.trainer import train

    train(cpu_train_spec(max_steps=2, logging_steps=10), tmp_path, str(tiny["gpt_neox"]), small_build)
    assert [x["step"] for x in log_of(tmp_path)] == [2]


def test_state_tuning_learns_only_the_state_and_the_saved_state_changes_logits(tiny, small_build, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from pipeline.rwkv import state
    from pipeline.train.trainer import train

    spec = cpu_train_spec(method="state", state_shift=True, max_steps=10, logging_steps=5, lr=0.1)
    run = train(spec, tmp_path, str(tiny["rwkv"]), small_build)
    assert [x["step"] for x in log_of(tmp_path)] == [5, 10]
    layers, hidden = 2, 64
    assert run["lora_params"] == 0 and run["state_params"] == 4 * layers * hidden
    assert not (tmp_path / "adapter").exists()
    saved = load_file(tmp_path / "state.safetensors")
    assert {k: tuple(v.shape) for k, v in saved.items()} == {
        k: (layers, hidden) for k in ("wkv_num", "wkv_log_den", "att_shift", "ffn_shift")
    }
    base = AutoModelForCausalLM.from_pretrained(tiny["rwkv"]).eval()
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        state.load(base, tmp_path)
        after = base(input_ids=ids).logits
        cached = base(
            input_ids=ids, use_cache=True
        ).logits  # generation's path: the first cache from the state
    assert not torch.allclose(before, after, atol=1e-3)
    assert rel_err(cached, after) < 1e-5
    # the base weights did not move: only the state was trained
    fresh = AutoModelForCausalLM.from_pretrained(tiny["rwkv"]).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in base.state_dict().items() if k in fresh)


def test_state_tuning_loss_falls_on_a_taught_pattern(tiny):
    from transformers import AutoModelForCausalLM

    from pipeline.rwkv.state import attach

    model = AutoModelForCausalLM.from_pretrained(tiny["rwkv"])
    model.requires_grad_(False)
    init = attach(model, shift=True)
    model.train()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        f"initial_state.{k}" for k in ("wkv_num", "wkv_log_den", "att_shift", "ffn_shift")
    ]
    ids = torch.tensor([PROMPT * 4] * 2)  # the pattern: one 8-token phrase, repeated
    opt = torch.optim.AdamW(init.parameters(), lr=0.1)
    losses = []
    for _ in range(40):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.92 * losses[0], losses


def test_state_tuning_is_refused_for_attention_models(tiny, small_build, tmp_path):
    from pipeline.errors import PipelineError
    from pipeline.train.trainer import train

    with pytest.raises(PipelineError, match="state tuning is for RWKV-4 models, not llama"):
        train(cpu_train_spec(method="state"), tmp_path, str(tiny["llama"]), small_build)


# --- BlinkDL .pth in and out --------------------------------------------------------------------------------


def chat_rwkv_logits(pth, ids) -> torch.Tensor:
    """The last token's logits from ChatRWKV's ``rwkv`` package (the client the story's users run)."""
    os.environ["RWKV_JIT_ON"] = "0"
    os.environ["RWKV_CUDA_ON"] = "0"
    from rwkv.model import RWKV

    model = RWKV(model=str(pth).removesuffix(".pth"), strategy="cpu fp32", verbose=False)
    logits, _ = model.forward(list(ids), None)
    return logits.float()


def test_pth_import_train_export_round_trip_with_chat_rwkv(tiny, small_build, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from flows.cli import app
    from pipeline.train.trainer import train

    original = AutoModelForCausalLM.from_pretrained(tiny["rwkv"]).eval()
    pth = tmp_path / "RWKV-4-tiny.pth"
    torch.save(blinkdl_state_dict(original), pth)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        want = original(input_ids=ids).logits[0, -1]

    cli = CliRunner()
    res = cli.invoke(
        app, ["rwkv", "import", str(pth), "--tokenizer", str(tiny["rwkv"]), "--out", str(tmp_path / "hf")]
    )
    assert res.exit_code == 0, res.output
    imported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert imported.config.num_hidden_layers == 2 and imported.config.vocab_size == original.config.vocab_size
    with torch.no_grad():
        assert torch.equal(imported(input_ids=ids).logits[0, -1], want)
    assert rel_err(chat_rwkv_logits(pth, PROMPT), want) < 1e-3  # the import alone, against the real client

    run_dir = tmp_path / "run"
    spec = cpu_train_spec(model=str(pth), tokenizer=str(tiny["rwkv"]), max_steps=5, lr=5e-2)
    run = train(spec, run_dir, str(pth), small_build)
    assert run["model"] == str(pth) and run["base"] == str(run_dir / "imported")
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(run_dir / "imported"), run_dir / "adapter"
    )
    merged = tuned.merge_and_unload().eval()
    with torch.no_grad():
        tuned_logits = merged(input_ids=ids).logits[0, -1]
    assert not torch.allclose(tuned_logits, want, atol=1e-3)  # training moved it

    res = cli.invoke(app, ["rwkv", "export", str(run_dir), "--out", str(tmp_path / "out" / "tuned.pth")])
    assert res.exit_code == 0, res.output
    exported = torch.load(tmp_path / "out" / "tuned.pth", weights_only=True)
    assert set(exported) == set(blinkdl_state_dict(original))
    assert rel_err(chat_rwkv_logits(tmp_path / "out" / "tuned.pth", PROMPT), tuned_logits) < 1e-3


def test_pth_import_errors_name_the_file_and_the_problem(tiny, tmp_path):
    from flows.cli import app

    cli = CliRunner()

    def run(pth):
        res = cli.invoke(
            app, ["rwkv", "import", str(pth), "--tokenizer", str(tiny["rwkv"]), "--out", str(tmp_path / "o")]
        )
        return res.exit_code, res.output.strip()

    not_rwkv = tmp_path / "llama.pth"
    torch.save(
        {"model.embed_tokens.weight": torch.zeros(4, 4), "lm_head.weight": torch.zeros(4, 4)}, not_rwkv
    )
    assert run(not_rwkv) == (
        2,
        f"error: {not_rwkv}: not an RWKV-4 checkpoint: 2 unknown tensor(s), e.g. lm_head.weight, "
        "model.embed_tokens.weight",
    )

    class Code:  # a pickle that would run code: weights_only refuses it
        def __reduce__(self):
            return (print, ("ran",))

    pickled = tmp_path / "evil.pth"
    torch.save({"emb.weight": Code()}, pickled)
    code, out = run(pickled)
    assert code == 2 and out.startswith(f"error: {pickled}: not a loadable torch state dict (")
    assert "ran" not in out.split("(")[0]

    assert run(tmp_path / "missing.pth") == (2, f"error: {tmp_path / 'missing.pth'}: no such file")
    assert not (tmp_path / "o").exists()
