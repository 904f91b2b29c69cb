"""finetune.py on a real GPT-2 checkpoint with the real GPT-2 tokenizer (../shared/checkpoints/tiny-gpt2).

    .venv/bin/python -m pytest tests/test_finetune.py -q

tiny-gpt2 has the architecture and tokenizer classes of ai-forever/rugpt3small_based_on_gpt2 (1 layer,
width 2, random weights), so the whole fine-tuning path runs in seconds: full fine-tuning and LoRA must each
lower the validation loss on Tolstoy text, and the result must load in `pipeline` in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import finetune

STORY = "posle_bala_after_the_ball.utf8bom.txt"


@pytest.fixture(scope="module")
def story_dataset(corpora_dir, tmp_path_factory):
    from corpora import CorpusArguments, prepare_corpus

    out = tmp_path_factory.mktemp("story") / "data"
    inputs = [str(corpora_dir / "tolstoy" / "txt" / STORY)]
    return prepare_corpus(CorpusArguments(source="text", inputs=inputs, output_dir=str(out),
                                          validation_split=0.2, max_doc_chars=2000))  # fmt: skip


def finetune_args(checkpoints_dir, data, out, *extra):
    return [
        "--model_name_or_path", str(checkpoints_dir / "tiny-gpt2"), "--dataset_dir", str(data),
        "--output_dir", str(out), "--block_size", "64", "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "16", "--max_steps", "30", "--eval_steps", "30", "--save_steps", "30",
        "--eval_on_start", "true", "--learning_rate", "2e-2", "--warmup_steps", "0", "--report_to", "none",
        "--max_eval_blocks", "32", "--sample_max_new_tokens", "4", "--logging_steps", "10", *extra,
    ]  # fmt: skip


def eval_losses(out) -> list[float]:
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [h["eval_loss"] for h in log if "eval_loss" in h]


def load_in_fresh_process(path, cwd) -> str:
    code = (
        "import sys; from transformers import pipeline\n"
        "p = pipeline('text-generation', model=sys.argv[1], trust_remote_code=True)\n"
        "print(p('Иван Васильевич', max_new_tokens=5, do_sample=False)[0]['generated_text'])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", code, str(path)], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_full_finetuning_lowers_validation_loss_and_loads(checkpoints_dir, story_dataset, tmp_path):
    out = tmp_path / "full"
    assert finetune.main(finetune_args(checkpoints_dir, story_dataset, out, "--wrap_documents", "true")) == 0
    before, after = eval_losses(out)[0], eval_losses(out)[-1]
    assert after < before - 0.05, (before, after)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_bits_per_byte"] > 0 and metrics["world_size"] == 1
    assert load_in_fresh_process(out, tmp_path).startswith("Иван Васильевич")


@pytest.mark.slow
def test_lora_lowers_validation_loss_and_merges(checkpoints_dir, story_dataset, tmp_path, caplog):
    out = tmp_path / "lora"
    args = finetune_args(checkpoints_dir, story_dataset, out, "--lora_r", "4", "--lora_alpha", "8",
                         "--lora_target_modules", "c_attn", "c_proj", "c_fc", "--merge_lora", "true")  # fmt: skip
    with caplog.at_level("INFO", logger="finetune"):
        assert finetune.main(args) == 0
    assert any("trainable of" in r.message for r in caplog.records)
    before, after = eval_losses(out)[0], eval_losses(out)[-1]
    assert after < before, (before, after)
    assert (out / "adapter_config.json").is_file() and (out / "merged" / "model.safetensors").is_file()
    assert load_in_fresh_process(out / "merged", tmp_path).startswith("Иван Васильевич")


def test_block_size_is_capped_by_the_model_context(checkpoints_dir):
    tokenizer, model = finetune.load_pretrained(str(checkpoints_dir / "tiny-gpt2"))
    assert tokenizer.pad_token == tokenizer.eos_token  # GPT-2 has no pad token of its own
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"
    assert finetune.capped_block_size(4096, model) == 1024
    assert finetune.capped_block_size(128, model) == 128


def test_unloadable_checkpoint_is_one_line_error(tmp_path, capsys):
    assert finetune.main(["--model_name_or_path", str(tmp_path / "missing"), "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and err[0].startswith("finetune.py: error:")
