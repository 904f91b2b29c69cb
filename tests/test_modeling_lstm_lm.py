"""The LSTM baseline: shapes, loss, overfitting, greedy generate, invalid configs, and the save -> fresh process ->
from_pretrained / pipeline round trip.

    .venv/bin/python -m pytest tests/test_modeling_lstm_lm.py -x -q
"""

import pytest
import torch
from test_modeling_ropegpt import char_tokenizer, greedy_by_recomputation, random_ids, round_trip_in_fresh_process
from transformers import AutoConfig, AutoModelForCausalLM

import modeling  # noqa: F401  (registers lstm_lm)
from modeling import LstmLMConfig, LstmLMForCausalLM


def tiny_lstm(seed=0, **overrides) -> LstmLMForCausalLM:
    torch.manual_seed(seed)
    fields = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2)
    return LstmLMForCausalLM(LstmLMConfig(**{**fields, **overrides})).eval()


def test_default_sizes_and_auto_classes():
    config = AutoConfig.for_model("lstm_lm", vocab_size=120)
    assert (config.embedding_size, config.hidden_size, config.num_hidden_layers) == (128, 256, 2)
    assert (config.pad_token_id, config.unk_token_id, config.bos_token_id, config.eos_token_id) == (0, 1, 2, 3)
    assert isinstance(AutoModelForCausalLM.from_config(config), LstmLMForCausalLM)


def test_shapes_finite_loss_and_overfit():
    model = tiny_lstm()
    ids = random_ids(batch=4, length=16)
    out = model(ids, labels=ids)
    assert out.logits.shape == (4, 16, 99) and torch.isfinite(out.loss)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(400):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def test_generate_equals_greedy_recomputation():
    model = tiny_lstm(eos_token_id=None, initializer_range=0.3)
    prompt = random_ids(batch=1, length=6)
    generated = model.generate(prompt, max_new_tokens=15, do_sample=False)
    assert torch.equal(generated, greedy_by_recomputation(model, prompt, 15))


def test_left_padded_batch_generates_what_each_prompt_generates_alone():
    model = tiny_lstm(eos_token_id=None, pad_token_id=0, initializer_range=0.3)
    short, long = random_ids(batch=1, length=3, seed=1), random_ids(batch=1, length=7, seed=2)
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.cat([torch.cat([torch.zeros(1, 4), torch.ones(1, 3)], 1), torch.ones(1, 7)]).long()
    together = model.generate(batch, attention_mask=mask, max_new_tokens=10, do_sample=False)
    for row, prompt in enumerate((short, long)):
        alone = model.generate(prompt, max_new_tokens=10, do_sample=False)
        assert torch.equal(together[row, -10:], alone[0, -10:]), row
    # the padding really was skipped: without the mask the short row reads its pads and its logits differ
    with torch.no_grad():
        masked = model(batch, attention_mask=mask).logits[0, -1]
        unmasked = model(batch).logits[0, -1]
        alone = model(short).logits[0, -1]
    assert torch.allclose(masked, alone, atol=1e-5) and not torch.allclose(unmasked, alone, atol=1e-3)


def test_invalid_configs_raise_one_line_value_error():
    for fields in (dict(hidden_size=0), dict(hidden_dropout=1.5), dict(tie_word_embeddings=True)):
        with pytest.raises(ValueError) as info:
            LstmLMConfig(**fields)
        assert "\n" not in str(info.value)


def test_save_load_pipeline_round_trip_in_fresh_process(tmp_path):
    text = "Все счастливые семьи похожи друг на друга."
    tokenizer = char_tokenizer(text)
    model = tiny_lstm(vocab_size=len(tokenizer))
    round_trip_in_fresh_process(model, tokenizer, tmp_path, prompt="Все счаст")
    assert {p.name for p in (tmp_path / "saved").glob("*.py")} >= {"configuration_lstm_lm.py", "modeling_lstm_lm.py"}
