"""RopeGPT keeps the contract transformers' own models keep (the checks of its common model tests, written for this
model): hidden states and attentions, switching the attention kernel at run time, tuple outputs, RoPE scaling types,
the static cache under torch.compile(fullgraph=True), packed documents, AutoModel, and old checkpoints.

    .venv/bin/python -m pytest tests/test_modeling_contract.py -x -q
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, DataCollatorWithFlattening

from modeling import RopeGPTConfig, RopeGPTForCausalLM, RopeGPTModel
from test_modeling_ropegpt import ATOL, left_padded, random_ids, tiny_config, tiny_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARCHITECTURES = {"default": {}, "llama-like": dict(norm_type="rmsnorm", mlp_type="swiglu", bias=False)}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_hidden_states_and_attentions_with_and_without_cache(arch):
    model = tiny_model(attn_implementation="eager", **ARCHITECTURES[arch])
    ids = random_ids(batch=2, length=10)
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
        n = model.config.num_hidden_layers
        assert len(out.hidden_states) == n + 1  # the embeddings, then every block
        assert all(h.shape == (2, 10, 32) for h in out.hidden_states)
        assert torch.equal(out.hidden_states[0], model.model.embed_tokens(ids))
        assert len(out.attentions) == n and all(a.shape == (2, 4, 10, 10) for a in out.attentions)
        assert torch.allclose(out.attentions[0].sum(-1), torch.ones(2, 4, 10), atol=1e-5)  # softmax rows
        assert out.attentions[0][0, 0].triu(1).abs().max() == 0  # causal: nothing above the diagonal

        # one more token with the cache: one query row over 11 keys
        step = model(ids[:, :1], past_key_values=out.past_key_values, output_hidden_states=True, output_attentions=True)
    assert len(step.hidden_states) == n + 1 and step.hidden_states[-1].shape == (2, 1, 32)
    assert all(a.shape == (2, 4, 1, 11) for a in step.attentions)
    # without the flags nothing is recorded
    assert model(ids).hidden_states is None and model(ids).attentions is None


def test_generate_returns_hidden_states_and_attentions():
    model = tiny_model(attn_implementation="eager", eos_token_id=None)
    ids = random_ids(batch=2, length=6)
    out = model.generate(ids, max_new_tokens=3, do_sample=False, return_dict_in_generate=True,
                         output_attentions=True, output_hidden_states=True)  # fmt: skip
    assert len(out.attentions) == len(out.hidden_states) == 3  # one entry per generated token
    assert out.attentions[0][0].shape == (2, 4, 6, 6)  # the prompt
    assert out.attentions[2][1].shape == (2, 4, 1, 8)  # the third token sees the prompt and two new tokens
    assert out.hidden_states[1][-1].shape == (2, 1, 32)


def test_assisted_decoding_with_attentions_and_same_tokens():
    model = tiny_model(attn_implementation="eager", eos_token_id=None, initializer_range=0.3)
    draft = tiny_model(seed=5, attn_implementation="eager", eos_token_id=None, num_hidden_layers=1)
    prompt = random_ids(batch=1, length=7)
    plain = model.generate(prompt, max_new_tokens=10, do_sample=False)
    # before the contract was kept, this crashed inside transformers: "'NoneType' object is not subscriptable"
    assisted = model.generate(prompt, assistant_model=draft, max_new_tokens=10, do_sample=False,
                              return_dict_in_generate=True, output_attentions=True)  # fmt: skip
    assert torch.equal(assisted.sequences, plain)  # greedy assisted decoding never changes the tokens
    assert len(assisted.attentions) == 10 and all(len(step) == 2 for step in assisted.attentions)


def test_set_attn_implementation_switches_at_run_time():
    model = tiny_model(attn_implementation="sdpa")
    ids, mask = left_padded(random_ids(batch=3), [0, 2, 5])
    with torch.no_grad():
        sdpa = model(ids, attention_mask=mask).logits
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager = model(ids, attention_mask=mask, output_attentions=True)
        model.set_attn_implementation("sdpa")
        again = model(ids, attention_mask=mask).logits
    assert len(eager.attentions) == 2  # only the eager kernel returns weights: the switch really happened
    real = mask.bool()
    assert (sdpa[real] - eager.logits[real]).abs().max() < ATOL
    assert torch.equal(sdpa, again)


def test_flex_attention_through_the_registry_matches_sdpa():
    model = tiny_model(attn_implementation="sdpa")
    ids, mask = left_padded(random_ids(batch=3), [0, 2, 5])
    with torch.no_grad():
        sdpa = model(ids, attention_mask=mask).logits
        model.set_attn_implementation("flex_attention")
        flex = model(ids, attention_mask=mask).logits
    real = mask.bool()
    assert (sdpa[real] - flex[real]).abs().max() < ATOL


@pytest.mark.parametrize("cls", [RopeGPTModel, RopeGPTForCausalLM])
def test_return_dict_false_gives_the_same_values_as_a_tuple(cls):
    torch.manual_seed(0)
    model = cls._from_config(tiny_config(), attn_implementation="eager").eval()
    ids = random_ids()
    kwargs = dict(output_hidden_states=True, output_attentions=True, use_cache=False)
    if cls is RopeGPTForCausalLM:
        kwargs["labels"] = ids
    with torch.no_grad():
        as_dict = model(ids, **kwargs)
        as_tuple = model(ids, return_dict=False, **kwargs)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
    for a, b in zip(as_tuple, as_dict.to_tuple()):
        if isinstance(a, tuple):
            assert all(torch.equal(x, y) for x, y in zip(a, b))
        else:
            assert torch.equal(a, b)


ROPE_TYPES = {
    "linear": {"factor": 4.0},
    "yarn": {"factor": 4.0},
    "llama3": {"factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    "longrope": {"short_factor": [1.0] * 4, "long_factor": [4.0] * 4, "original_max_position_embeddings": 16},
}


@pytest.mark.parametrize("rope_type", ROPE_TYPES)
def test_each_rope_type_changes_the_outputs_and_survives_save_load(rope_type, tmp_path):
    # a wide initialisation so that attention, hence position, matters; head_dim 8: 4 frequencies
    base = tiny_model(max_position_embeddings=16, initializer_range=0.3)
    rope = {"rope_type": rope_type, "rope_theta": 10_000.0, **ROPE_TYPES[rope_type]}
    stretched = RopeGPTForCausalLM(tiny_config(max_position_embeddings=64, rope_parameters=rope)).eval()
    stretched.load_state_dict(base.state_dict())
    assert stretched.model.rotary_emb.rope_type == rope_type
    ids = random_ids(batch=1, length=40)  # past the 16 positions the base model "was trained for"
    with torch.no_grad():
        assert (base(ids).logits - stretched(ids).logits).abs().max() > 1e-3
        stretched.save_pretrained(tmp_path)
        reloaded = RopeGPTForCausalLM.from_pretrained(tmp_path).eval()
        assert reloaded.config.rope_parameters["rope_type"] == rope_type
        assert (reloaded(ids).logits - stretched(ids).logits).abs().max() < ATOL


def test_dynamic_rope_changes_only_sequences_past_the_trained_context(tmp_path):
    """"dynamic" keeps max_position_embeddings at the trained context and rescales only beyond it."""
    base = tiny_model(max_position_embeddings=16, initializer_range=0.3)
    dynamic = RopeGPTForCausalLM(tiny_config(
        max_position_embeddings=16, rope_parameters={"rope_type": "dynamic", "rope_theta": 10_000.0, "factor": 2.0}
    )).eval()  # fmt: skip
    dynamic.load_state_dict(base.state_dict())
    short, long = random_ids(batch=1, length=12), random_ids(batch=1, length=40)
    with torch.no_grad():
        assert (base(short).logits - dynamic(short).logits).abs().max() < ATOL
        long_logits = dynamic(long).logits
        assert (base(long).logits - long_logits).abs().max() > 1e-3
        assert (base(short).logits - dynamic(short).logits).abs().max() < ATOL  # and it resets afterwards
        dynamic.save_pretrained(tmp_path)
        assert (RopeGPTForCausalLM.from_pretrained(tmp_path)(long).logits - long_logits).abs().max() < ATOL


def test_unknown_rope_type_is_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match="rope_type must be one of") as info:
        RopeGPTForCausalLM(tiny_config(rope_parameters={"rope_type": "ntk-by-magic", "rope_theta": 1e4}))
    assert "\n" not in str(info.value)


def left_padded_prompts():
    prompts = [random_ids(batch=1, length=n, seed=n)[0] for n in (9, 5, 2)]
    ids, mask = torch.zeros(3, 9, dtype=torch.long), torch.zeros(3, 9, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, 9 - len(p):], mask[row, 9 - len(p):] = p, 1
    return ids, mask


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_static_cache_equals_dynamic_cache_also_compiled_fullgraph(attn_implementation):
    model = tiny_model(attn_implementation=attn_implementation, eos_token_id=None, initializer_range=0.3)
    ids, mask = left_padded_prompts()
    greedy = dict(attention_mask=mask, max_new_tokens=12, do_sample=False)
    dynamic = model.generate(ids, **greedy)
    assert torch.equal(model.generate(ids, cache_implementation="static", **greedy), dynamic)
    # fullgraph: any graph break or host sync (e.g. `bool(mask.all())`) in forward is an error. The "eager" backend
    # traces exactly as inductor does without generating code; bench/bench_model.py measures inductor's speed.
    torch._dynamo.reset()
    model.forward = torch.compile(model.forward, fullgraph=True, backend="eager")
    assert torch.equal(model.generate(ids, cache_implementation="static", **greedy), dynamic)


DOCUMENTS = [random_ids(batch=1, length=n, seed=n)[0] for n in (6, 9, 4)]


def alone(model, document) -> torch.Tensor:
    with torch.no_grad():
        return model(document[None], use_cache=False).logits[0]


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_row_by_position_ids_equals_documents_one_by_one(attn_implementation):
    model = tiny_model(attn_implementation=attn_implementation)
    packed = torch.cat(DOCUMENTS)[None]  # one row, three documents
    positions = torch.cat([torch.arange(len(d)) for d in DOCUMENTS])[None]  # restart at 0 per document
    with torch.no_grad():
        logits = model(packed, position_ids=positions, use_cache=False).logits[0]
    expected = torch.cat([alone(model, d) for d in DOCUMENTS])
    assert (logits - expected).abs().max() < ATOL
    # without the restart the second document attends to the first: the check above is not vacuous
    with torch.no_grad():
        leaky = model(packed, use_cache=False).logits[0]
    assert (leaky[6:] - expected[6:]).abs().max() > 1e-3


def test_data_collator_with_flattening_trains_documents_apart():
    """transformers' padding-free collator: one row, position_ids restarting, labels -100 at each document start."""
    model = tiny_model().train()
    batch = DataCollatorWithFlattening(return_position_ids=True)([{"input_ids": d.tolist()} for d in DOCUMENTS])
    packed_loss = model(**batch).loss
    # the same tokens as separate rows (right-padded, padding ignored by -100): the same mean over the same targets
    ids = torch.zeros(3, 9, dtype=torch.long)
    labels = torch.full((3, 9), -100)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for row, d in enumerate(DOCUMENTS):
        ids[row, : len(d)], labels[row, : len(d)], mask[row, : len(d)] = d, d, 1
    padded_loss = model(ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(packed_loss, padded_loss, atol=1e-5)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_custom_4d_mask_keeps_documents_apart(attn_implementation):
    model = tiny_model(attn_implementation=attn_implementation)
    packed = torch.cat(DOCUMENTS)[None]
    doc = torch.cat([torch.full((len(d),), i) for i, d in enumerate(DOCUMENTS)])
    allowed = (doc[:, None] == doc[None, :]) & torch.ones(len(doc), len(doc), dtype=torch.bool).tril()
    mask = torch.zeros(1, 1, len(doc), len(doc)).masked_fill(~allowed, torch.finfo(torch.float32).min)
    positions = torch.cat([torch.arange(len(d)) for d in DOCUMENTS])[None]
    with torch.no_grad():
        logits = model(packed, attention_mask=mask, position_ids=positions, use_cache=False).logits[0]
    assert (logits - torch.cat([alone(model, d) for d in DOCUMENTS])).abs().max() < ATOL


def test_automodel_builds_the_base_model(tmp_path):
    config = tiny_config()
    base = AutoModel.from_config(config)
    assert type(base) is RopeGPTModel
    lm = AutoModelForCausalLM.from_config(config)
    lm.save_pretrained(tmp_path)
    # the causal LM's folder also loads as the base model, with its trained weights (probing, embeddings)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is RopeGPTModel
    assert torch.equal(loaded.embed_tokens.weight, lm.model.embed_tokens.weight)
    ids = random_ids()
    with torch.no_grad():
        assert torch.equal(loaded(ids).last_hidden_state, lm.model(ids).last_hidden_state)


OLD_CHECKPOINT_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys, torch
    from transformers import AutoModelForCausalLM
    folder = sys.argv[1]
    try:
        import modeling
        sys.exit("modeling is importable here: the check would not prove the remote code travels")
    except ImportError:
        pass
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    ids = torch.tensor([[5, 17, 42, 8, 93, 61, 7, 30, 12, 55]])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    print(json.dumps({"logits": out.logits[0].tolist(), "hidden_states": len(out.hidden_states)}))
    """
)


def test_old_checkpoint_loads_unchanged_with_the_new_code(tmp_path):
    """tests/fixtures/ropegpt_v1: a tiny model saved by the code before this contract (commit 188f0c1), with the
    logits and greedy tokens it gave then. The current classes load it and give the same numbers; saved again, it
    carries the new remote code, which loads in a fresh process without this package."""
    folder = FIXTURES / "ropegpt_v1"
    expected = json.loads((folder / "expected.json").read_text())
    ids = torch.tensor(expected["input_ids"])
    model = RopeGPTForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(ids).logits[0]
    assert (logits - torch.tensor(expected["logits"])).abs().max() < 1e-6
    assert model.generate(ids, max_new_tokens=8, do_sample=False).tolist() == expected["greedy"]

    model.save_pretrained(tmp_path / "resaved")
    script = tmp_path / "fresh.py"
    script.write_text(OLD_CHECKPOINT_IN_FRESH_PROCESS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "resaved")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (torch.tensor(out["logits"]) - torch.tensor(expected["logits"])).abs().max() < 1e-6
    assert out["hidden_states"] == 3  # the new remote code records hidden states
