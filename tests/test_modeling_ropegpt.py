"""RopeGPT: shapes, causality, equivalence with Llama, SDPA vs eager, the cache, checkpointing, gradient
accumulation, and the save -> fresh process -> from_pretrained / pipeline round trip.

    .venv/bin/python -m pytest tests/test_modeling_ropegpt.py -x -q
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, pipeline

import modeling
from modeling import PRESETS, RopeGPTConfig, RopeGPTForCausalLM
from modeling.modeling_ropegpt import apply_rotary_pos_emb

ATOL = 1e-5


def tiny_config(**overrides) -> RopeGPTConfig:
    """transformers' test size: vocab 99, width 32, 2 layers."""
    fields = dict(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64,
    )
    return RopeGPTConfig(**{**fields, **overrides})


def tiny_model(seed=0, attn_implementation="sdpa", **overrides) -> RopeGPTForCausalLM:
    torch.manual_seed(seed)
    config = tiny_config(**overrides)
    return RopeGPTForCausalLM._from_config(config, attn_implementation=attn_implementation).eval()


def random_ids(batch=2, length=12, vocab=99, seed=1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, vocab, (batch, length), generator=generator)


def left_padded(ids: torch.Tensor, pads: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad row i with pads[i] <pad> tokens on the left (keeping the row length): ids and mask."""
    ids, mask = ids.clone(), torch.ones_like(ids)
    for row, n in enumerate(pads):
        ids[row, :n], mask[row, :n] = 0, 0
    return ids, mask


def test_shapes_and_finite_loss():
    model = tiny_model()
    ids = random_ids()
    out = model(ids, labels=ids)
    assert out.logits.shape == (2, 12, 99)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.past_key_values.get_seq_length() == 12  # eval mode keeps a cache by default
    model.train()
    assert model(ids, labels=ids).past_key_values is None  # training does not build one


def test_overfits_one_batch():
    model = tiny_model().train()
    ids = random_ids(batch=4, length=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_causality(attn_implementation):
    model = tiny_model(attn_implementation=attn_implementation)
    ids = random_ids(batch=1, length=16)
    changed = ids.clone()
    changed[:, 9:] = random_ids(batch=1, length=7, seed=7)
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert torch.allclose(a[:, :9], b[:, :9], atol=ATOL)
    assert not torch.allclose(a[:, 9:], b[:, 9:], atol=ATOL)


def llama_twin(model: RopeGPTForCausalLM) -> LlamaForCausalLM:
    """A LlamaForCausalLM of the same shape holding RopeGPT's weights (norm weights randomised first)."""
    c = model.config
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_attention_heads, max_position_embeddings=c.max_position_embeddings,
            rms_norm_eps=c.layer_norm_eps, tie_word_embeddings=False, pad_token_id=c.pad_token_id,
            rope_parameters=dict(c.rope_parameters), attn_implementation="sdpa",
        )
    ).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                param.uniform_(0.5, 1.5)
    ours = model.state_dict()
    theirs = {"model.embed_tokens.weight": ours["model.embed_tokens.weight"], "lm_head.weight": ours["lm_head.weight"]}
    theirs["model.norm.weight"] = ours["model.norm.weight"]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        q, k, v = ours[p + "self_attn.qkv_proj.weight"].chunk(3)
        gate, up = ours[p + "mlp.up_proj.weight"].chunk(2)
        theirs |= {
            p + "self_attn.q_proj.weight": q, p + "self_attn.k_proj.weight": k, p + "self_attn.v_proj.weight": v,
            p + "self_attn.o_proj.weight": ours[p + "self_attn.o_proj.weight"],
            p + "mlp.gate_proj.weight": gate, p + "mlp.up_proj.weight": up,
            p + "mlp.down_proj.weight": ours[p + "mlp.down_proj.weight"],
            p + "input_layernorm.weight": ours[p + "input_layernorm.weight"],
            p + "post_attention_layernorm.weight": ours[p + "post_attention_layernorm.weight"],
        }
    missing, unexpected = llama.load_state_dict(theirs, strict=False)
    assert not unexpected and all("rotary" in key for key in missing), (missing, unexpected)
    return llama


def test_matches_llama_with_and_without_padding():
    model = tiny_model(norm_type="rmsnorm", mlp_type="swiglu", bias=False, tie_word_embeddings=False,
                       layer_norm_eps=1e-6, rope_theta=500.0)
    llama = llama_twin(model)
    ids = random_ids(batch=3, length=14)
    with torch.no_grad():
        assert (model(ids).logits - llama(ids).logits).abs().max() < ATOL
        ids, mask = left_padded(ids, [0, 3, 6])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ours = model(ids, attention_mask=mask, position_ids=positions).logits
        theirs = llama(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()  # padded positions are garbage in both models, by design
    assert (ours[real] - theirs[real]).abs().max() < ATOL


def test_sdpa_matches_eager_with_and_without_padding():
    sdpa = tiny_model(attn_implementation="sdpa")
    eager = tiny_model(attn_implementation="eager")
    eager.load_state_dict(sdpa.state_dict())
    ids, mask = left_padded(random_ids(batch=3), [0, 2, 5])
    with torch.no_grad():
        assert (sdpa(ids).logits - eager(ids).logits).abs().max() < ATOL
        a, b = sdpa(ids, attention_mask=mask).logits, eager(ids, attention_mask=mask).logits
    assert torch.isfinite(a).all() and torch.isfinite(b).all()  # all-padding rows: no NaN in either kernel
    # what a padding position attends to differs between kernels (as in Llama) and is never read: compare tokens
    real = mask.bool()
    assert (a[real] - b[real]).abs().max() < ATOL


def greedy_by_recomputation(model, ids, new_tokens):
    for _ in range(new_tokens):
        with torch.no_grad():
            next_token = model(ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, next_token], dim=-1)
    return ids


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_cached_generate_equals_recomputation_and_left_padding(attn_implementation):
    # a wide initialisation so that attention, not the current token's embedding, decides the next token
    model = tiny_model(attn_implementation=attn_implementation, eos_token_id=None, initializer_range=0.3)
    prompt = random_ids(batch=1, length=7)
    cached = model.generate(prompt, max_new_tokens=20, do_sample=False, use_cache=True)
    assert torch.equal(cached, greedy_by_recomputation(model, prompt, 20))

    prompts = [random_ids(batch=1, length=n, seed=n)[0] for n in (9, 5, 2)]
    ids = torch.zeros(3, 9, dtype=torch.long)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, 9 - len(p):], mask[row, 9 - len(p):] = p, 1
    greedy = dict(max_new_tokens=12, do_sample=False, return_dict_in_generate=True, output_logits=True)
    batched = model.generate(ids, attention_mask=mask, **greedy)
    for row, p in enumerate(prompts):
        alone = model.generate(p[None], **greedy)
        assert torch.equal(batched.sequences[row, 9:], alone.sequences[0, len(p):]), row
        for step_batched, step_alone in zip(batched.logits, alone.logits):
            assert (step_batched[row] - step_alone[0]).abs().max() < ATOL, row


def test_activation_checkpointing_same_loss_and_gradients():
    model = tiny_model(hidden_dropout=0.0).train()
    ids = random_ids(batch=2, length=16)

    def loss_and_grads():
        model.zero_grad()
        loss = model(ids, labels=ids).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss, grads = loss_and_grads()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    loss_ckpt, grads_ckpt = loss_and_grads()
    assert torch.allclose(loss, loss_ckpt, atol=1e-6)
    for name in grads:
        assert torch.allclose(grads[name], grads_ckpt[name], atol=1e-6), name


def test_gradient_accumulation_with_num_items_in_batch():
    model = tiny_model().train()
    ids = random_ids(batch=4, length=12)
    labels = ids.clone()
    labels[0, :8] = -100  # first half ignores 8 + 1 targets, second half 1: unequal counts
    labels[2, :1] = -100
    model.zero_grad()
    full = model(ids, labels=labels).loss
    full.backward()
    full_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    num_items = (labels[:, 1:] != -100).sum()  # what Trainer counts: shifted targets of the whole batch
    model.zero_grad()
    total = 0.0
    for half in (slice(0, 2), slice(2, 4)):
        loss = model(ids[half], labels=labels[half], num_items_in_batch=num_items).loss
        loss.backward()
        total += loss.detach()
    assert torch.allclose(total, full.detach(), atol=1e-6)
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, full_grads[name], atol=1e-6), name


def test_flash_attention_without_package_is_a_clear_error():
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("flash_attn is installed here")
    with pytest.raises((ImportError, ValueError), match="(?i)flash"):
        RopeGPTForCausalLM._from_config(tiny_config(), attn_implementation="flash_attention_2")


def char_tokenizer(text: str, max_length: int = 64) -> PreTrainedTokenizerFast:
    """A throwaway char-level tokenizer: <pad> <unk> <bos> <eos> = 0..3, then the characters of `text`."""
    vocab = {token: i for i, token in enumerate(["<pad>", "<unk>", "<bos>", "<eos>"])}
    for char in sorted(set(text)):
        vocab.setdefault(char, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        model_max_length=max_length,
    )


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys, torch
    from transformers import AutoModelForCausalLM, pipeline
    folder, ids, prompt = sys.argv[1], torch.tensor(json.loads(sys.argv[2])), sys.argv[3]
    try:
        import modeling
        sys.exit("modeling is importable here: the round trip would not prove the remote code travels")
    except ImportError:
        pass
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(ids).logits
    out = {"class": type(model).__module__, "logits": logits.tolist()}
    if hasattr(model, "lm_head") and hasattr(model, "model"):
        out["tied"] = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    generator = pipeline("text-generation", model=folder, trust_remote_code=True)
    out["text"] = generator(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
    print(json.dumps(out))
    """
)


def round_trip_in_fresh_process(model, tokenizer, tmp_path, prompt: str) -> None:
    """Save model + tokenizer; reload both in a subprocess that cannot import `modeling`; compare."""
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModelForCausalLM"}
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    text = pipeline("text-generation", model=model, tokenizer=tokenizer)(
        prompt, max_new_tokens=12, do_sample=False
    )[0]["generated_text"]

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS)
    done = subprocess.run(
        [sys.executable, str(script), str(folder), json.dumps(ids.tolist()), prompt],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["class"].startswith("transformers_modules"), out["class"]  # loaded from the copied remote code
    assert (torch.tensor(out["logits"]) - logits).abs().max() < 1e-6
    assert out["text"] == text
    return out


def test_save_load_pipeline_round_trip_in_fresh_process(tmp_path):
    text = "Все счастливые семьи похожи друг на друга."
    tokenizer = char_tokenizer(text)
    model = tiny_model(vocab_size=len(tokenizer))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    out = round_trip_in_fresh_process(model, tokenizer, tmp_path, prompt="Все счаст")
    assert out["tied"] is True
    assert {p.name for p in (tmp_path / "saved").glob("*.py")} >= {"configuration_ropegpt.py", "modeling_ropegpt.py"}


def test_invalid_configs_raise_one_line_value_error():
    cases = [
        dict(hidden_size=30, num_attention_heads=4),
        dict(hidden_size=12, num_attention_heads=4),  # head dim 3: odd
        dict(norm_type="batchnorm"),
        dict(mlp_type="relu"),
        dict(rope_parameters={"rope_type": "su_perscaled", "rope_theta": 1e4}),  # not a RoPE type transformers has
        dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4}),  # yarn needs its "factor"
    ]
    for fields in cases:
        with pytest.raises(ValueError) as info:
            tiny_config(**fields)
        assert "\n" not in str(info.value), str(info.value)
    with pytest.raises(ValueError, match="unknown preset"):
        RopeGPTConfig.from_preset("huge")


def test_preset_parameter_counts():
    counts = modeling.preset_parameter_counts()
    for name, count in counts.items():
        print(f"{name:>7}: {count / 1e6:6.1f}M parameters  {PRESETS[name]}")
    assert set(counts) == {"tiny", "small", "medium", "base"}
    assert abs(counts["small"] - 23e6) / 23e6 < 0.05
    assert abs(counts["base"] - 124e6) / 124e6 < 0.05
    assert counts["tiny"] < counts["small"] < counts["medium"] < counts["base"]
    small = RopeGPTConfig.from_preset("small", vocab_size=1000)
    assert (small.num_hidden_layers, small.num_attention_heads, small.hidden_size, small.vocab_size) == (6, 8, 512, 1000)
    assert (small.pad_token_id, small.unk_token_id, small.bos_token_id, small.eos_token_id) == (0, 1, 2, 3)


# ---------------------------------------------------------------- speedrun switches (config fields, off by default)

SWITCHES = dict(mlp_type="relu2", qk_norm=True, zero_init_projections=True, logit_softcap=5.0)


def test_relu2_mlp_is_relu_squared():
    model = tiny_model(mlp_type="relu2")
    mlp = model.model.layers[0].mlp
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        expected = mlp.down_proj(torch.relu(mlp.up_proj(x)) ** 2)
        assert torch.allclose(mlp(x), expected, atol=1e-6)


def test_qk_norm_attention_matches_its_eager_reference():
    """Queries and keys RMS-normalised per head before RoPE, written out by hand, against both kernels."""
    for implementation in ("eager", "sdpa"):
        model = tiny_model(attn_implementation=implementation, qk_norm=True, initializer_range=0.3)
        attn = model.model.layers[0].self_attn
        x, ids = torch.randn(1, 7, 32), torch.arange(7)[None]
        with torch.no_grad():
            q, k, v = attn.qkv_proj(x).view(1, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
            q = q / q.pow(2).mean(-1, keepdim=True).add(torch.finfo(q.dtype).eps).sqrt()
            k = k / k.pow(2).mean(-1, keepdim=True).add(torch.finfo(k.dtype).eps).sqrt()
            cos, sin = model.model.rotary_emb(x, ids)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            causal = torch.full((7, 7), torch.finfo(torch.float32).min).triu(1)[None, None]  # (1, 1, T, S)
            scores = (q @ k.transpose(-2, -1)) / 8**0.5 + causal
            expected = attn.o_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 7, 32))
            out, _ = attn(x, (cos, sin), attention_mask=causal)
        assert (out - expected).abs().max() < ATOL, implementation
        plain = tiny_model(attn_implementation=implementation, initializer_range=0.3)
        with torch.no_grad():  # the same weights without the switch: it did something
            assert (plain.model.layers[0].self_attn(x, (cos, sin), attention_mask=causal)[0] - out).abs().max() > 1e-3


def test_zero_init_projections_start_every_block_as_the_identity():
    model = tiny_model(zero_init_projections=True)
    for layer in model.model.layers:
        assert layer.self_attn.o_proj.weight.abs().max() == 0 and layer.mlp.down_proj.weight.abs().max() == 0
        assert layer.self_attn.qkv_proj.weight.std() > 0  # only the output projections
    ids = random_ids()
    with torch.no_grad():
        expected = model.lm_head(model.model.norm(model.model.embed_tokens(ids)))  # blocks add nothing yet
        assert (model(ids).logits - expected).abs().max() < ATOL


def test_logit_softcap_bounds_the_logits():
    capped = tiny_model(logit_softcap=1.0, initializer_range=0.3)
    raw = tiny_model(initializer_range=0.3)
    ids = random_ids()
    with torch.no_grad():
        a, b = capped(ids).logits, raw(ids).logits
    assert b.abs().max() > 2.0 and a.abs().max() <= 1.0
    assert torch.allclose(a, torch.tanh(b), atol=1e-6)


def test_switches_survive_save_and_load_in_a_fresh_process(tmp_path):
    text = "Все счастливые семьи похожи друг на друга."
    tokenizer = char_tokenizer(text)
    model = tiny_model(vocab_size=len(tokenizer), tie_word_embeddings=False, **SWITCHES).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)  # move the zero-initialised projections off zero
    ids = tokenizer(text, return_tensors="pt").input_ids
    for _ in range(3):
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    round_trip_in_fresh_process(model.eval(), tokenizer, tmp_path, prompt="Все счаст")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert {k: config[k] for k in SWITCHES} == SWITCHES


def test_logit_softcap_gradients_match_the_plain_formula():
    """The cheaper form (division on the head's input, tanh in place) trains exactly as cap * tanh(logits / cap)."""
    model = tiny_model(logit_softcap=2.0, initializer_range=0.3)
    ids = random_ids()
    model(ids, labels=ids).loss.backward()
    fast = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    hidden = model.model(ids).last_hidden_state
    logits = 2.0 * torch.tanh(model.lm_head(hidden) / 2.0)
    torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).backward()
    for name, parameter in model.named_parameters():
        assert torch.allclose(parameter.grad, fast[name], atol=1e-6), name
