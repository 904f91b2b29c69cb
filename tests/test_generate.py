"""generate.py on a real GPT-2 checkpoint (../shared/checkpoints/tiny-gpt2) and a tiny RopeGPT training folder.

    .venv/bin/python -m pytest tests/test_generate.py -q

`build_run_dir` makes a folder shaped like train_clm.py's output (tests/test_push_to_hub.py uses it too);
`save_tiny_ropegpt` is its model and tokenizer (tests/test_app.py uses that).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import generate
from generate import format_score_table, generate_texts, load_model, score_lines

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Иван Ильич"


def save_tiny_ropegpt(path: Path, corpora_dir: Path, context: int):
    """A tiny RopeGPT (random weights) and a byte-level BPE tokenizer trained on real Tolstoy, saved to `path`;
    returns (the text file the tokenizer learned from, the tokenizer)."""
    import modeling
    from tokenizer_training import train_tokenizer

    source = corpora_dir / "tolstoy" / "txt" / "smert_ivana_ilicha.utf8bom.txt"
    lines = [line.strip() for line in source.read_text(encoding="utf-8-sig").splitlines() if line.strip()][:300]
    tokenizer = train_tokenizer(lines, kind="bpe", vocab_size=400, model_max_length=context)
    torch.manual_seed(0)
    config = modeling.RopeGPTConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), num_hidden_layers=2, num_attention_heads=2, hidden_size=32,
        intermediate_size=64, max_position_embeddings=context,
    )  # fmt: skip
    modeling.RopeGPTForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return source, tokenizer


def build_run_dir(path: Path, corpora_dir: Path) -> Path:
    """A tiny RopeGPT trained-output folder (`save_tiny_ropegpt`), plus the files train_clm.py writes beside
    the model, including ones that must never be uploaded."""
    source, tokenizer = save_tiny_ropegpt(path, corpora_dir, context=64)
    tokenizer.save_pretrained(path / "tokenizer")
    metrics = {"eval_loss": 5.8123, "eval_perplexity": 334.5678, "eval_bits_per_byte": 2.4567, "global_step": 10,
               "world_size": 1, "train_runtime": 3.2}  # fmt: skip
    (path / "metrics.json").write_text(json.dumps(metrics))
    run_args = {
        "ModelArguments": {"model_type": "ropegpt", "preset": "tiny", "model_name_or_path": None},
        "DataArguments": {"source": "text", "inputs": [str(source.parent)], "tokenizer_kind": "bpe",
                          "vocab_size": 400, "block_size": 64},  # fmt: skip
        "RunArguments": {"sample_prompts": [PROMPT]},
        "TrainingArguments": {"max_steps": 10, "learning_rate": 1e-3, "seed": 42, "hub_token": "hf_SECRETsecret123456"},
        "recipe": "recipes/tolstoy_tiny.yaml",
    }
    (path / "run_args.json").write_text(json.dumps(run_args, ensure_ascii=False))
    (path / "samples.txt").write_text(f"=== step 5\n{PROMPT} был\n=== step 10\n{PROMPT} умер\n", encoding="utf-8")
    (path / "corpus" / "train").mkdir(parents=True)
    (path / "corpus" / "train" / "data-00000-of-00001.arrow").write_bytes(b"corpus data")
    manifest = {"format": "ropegpt-corpus/1", "arguments": {"source": "text", "inputs": [str(source.parent)]},
                "sources": [{"source": "text", "location": source.name, "rows": 1}],
                "splits": {"train": {"documents": 9, "characters": 900, "utf8_bytes": 1700},
                           "validation": {"documents": 1, "characters": 100, "utf8_bytes": 190}}}  # fmt: skip
    (path / "corpus" / "manifest.json").write_text(json.dumps(manifest))
    (path / "checkpoint-1").mkdir()
    (path / "checkpoint-1" / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    (path / "checkpoint-1" / "optimizer.pt").write_bytes(b"optimizer")
    (path / "runs").mkdir()
    (path / "runs" / "events.out.tfevents.1.host").write_bytes(b"tensorboard")
    (path / "training_args.bin").write_bytes(b"\x80\x04pickle")
    (path / "trainer_state.json").write_text("{}")
    return path


@pytest.fixture(scope="module")
def ropegpt_dir(tmp_path_factory, corpora_dir):
    return build_run_dir(tmp_path_factory.mktemp("run"), corpora_dir)


@pytest.fixture(scope="module")
def ropegpt(ropegpt_dir):
    return load_model(str(ropegpt_dir), device="cpu")


@pytest.fixture(scope="module")
def gpt2(checkpoints_dir):
    return load_model(str(checkpoints_dir / "tiny-gpt2"), device="cpu")


@pytest.fixture(params=["ropegpt", "gpt2"])
def loaded(request):
    return request.getfixturevalue(request.param)


def test_pick_device_prefers_cuda_then_mps_then_cpu():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert generate.pick_device().type == expected


def test_greedy_is_deterministic_and_equals_model_generate(loaded):
    model, tokenizer = loaded
    texts = generate_texts(model, tokenizer, [PROMPT], greedy=True, max_new_tokens=12)
    assert texts == generate_texts(model, tokenizer, [PROMPT], greedy=True, max_new_tokens=12)
    ids = tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                         pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    assert texts == [PROMPT + tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)]


def test_sampling_is_reproducible_for_a_seed(loaded):
    model, tokenizer = loaded
    kwargs = dict(max_new_tokens=16, temperature=1.0, top_k=0, top_p=1.0)
    first = generate_texts(model, tokenizer, [PROMPT], seed=0, **kwargs)
    assert first == generate_texts(model, tokenizer, [PROMPT], seed=0, **kwargs)
    assert first != generate_texts(model, tokenizer, [PROMPT], seed=1, **kwargs)


def test_num_return_sequences_per_prompt(loaded):
    model, tokenizer = loaded  # GPT-2 has no pad token: load_model must have given it one
    prompts = [PROMPT, "Петр Иванович"]
    texts = generate_texts(model, tokenizer, prompts, seed=0, num_return_sequences=3, max_new_tokens=5)
    assert len(texts) == 6
    assert [t.startswith(p) for t, p in zip(texts, [prompts[0]] * 3 + [prompts[1]] * 3)] == [True] * 6
    assert tokenizer.pad_token is not None


def test_score_table_values(loaded):
    model, tokenizer = loaded
    lines = ["Иван Ильич умер.", "", "Петр Иванович, не вступая в прения, молчал."]
    rows = score_lines(model, tokenizer, lines)
    assert [r["line"] for r in rows] == [1, 3]  # blank lines are skipped, numbering follows the input
    for row in rows:
        assert row["perplexity"] == pytest.approx(math.exp(row["nll"] / row["tokens"]))
    # One line by hand: the first token is predicted from eos, every token once.
    ids = [tokenizer.eos_token_id] + tokenizer(lines[0], add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum").item()
    assert rows[0]["tokens"] == len(ids) - 1
    assert rows[0]["bytes"] == len(lines[0].encode("utf-8"))
    assert rows[0]["bits_per_byte"] == pytest.approx(nll / math.log(2) / rows[0]["bytes"], rel=1e-4)
    table = format_score_table(rows)
    assert "Иван Ильич умер." in table and table.splitlines()[-1].split()[0] == "all"


def test_score_lines_longer_than_the_context(ropegpt):
    model, tokenizer = ropegpt  # context 64 tokens
    line = " ".join(["Петр Иванович, не вступая в прения, не принимал участия в разговоре."] * 8)
    (row,) = score_lines(model, tokenizer, [line])
    assert row["tokens"] == len(tokenizer(line, add_special_tokens=False).input_ids) > 64
    assert math.isfinite(row["perplexity"])


def test_score_cli_reads_a_file(ropegpt_dir, tmp_path, capsys):
    path = tmp_path / "valid.txt"
    path.write_text("Иван Ильич умер.\nОн был\n", encoding="utf-8")
    assert generate.main(["--model", str(ropegpt_dir), "--score", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["line", "tokens", "bytes", "perplexity", "bits/byte", "text"]
    assert [line.split()[0] for line in out[2:]] == ["1", "2", "-" * len(out[0]), "all"]


def test_bad_inputs_are_one_line_errors(tmp_path, ropegpt_dir, capsys):
    assert generate.main(["--model", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert generate.main(["--model", str(ropegpt_dir), "--prompts_file", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no prompts" in err
    assert generate.main(["--model", str(ropegpt_dir), "--prompt", "x", "--greedy", "--num_return_sequences", "3"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_score_of_a_missing_file_is_an_error_not_a_sentence(ropegpt_dir, tmp_path, capsys):
    for name in ("missing.txt", str(tmp_path / "nope")):
        assert generate.main(["--model", str(ropegpt_dir), "--score", name]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--score {name}: no such file" in err, err
    # a sentence is still scored as text
    assert generate.main(["--model", str(ropegpt_dir), "--score", "Иван Ильич умер."]) == 0


def test_a_prompt_longer_than_the_context_keeps_its_last_tokens(ropegpt, capsys):
    model, tokenizer = ropegpt
    context = model.config.max_position_embeddings  # 64
    prompt = "Иван Ильич умер. Он был членом судебной палаты. " * 40
    assert len(tokenizer(prompt, add_special_tokens=False).input_ids) > 4 * context
    kept, note = generate.fit_prompt(tokenizer, prompt, context, 8)
    assert note and f"keeping its last {context - 8} tokens" in note and prompt.endswith(kept)
    assert len(tokenizer(kept, add_special_tokens=False).input_ids) <= context - 8
    (text,) = generate_texts(model, tokenizer, [prompt], greedy=True, max_new_tokens=8)
    assert "keeping its last 56 tokens" in capsys.readouterr().err
    (expected,) = generate_texts(model, tokenizer, [kept], greedy=True, max_new_tokens=8)
    assert text == expected and text.startswith(kept)
    assert generate.fit_prompt(tokenizer, "Иван Ильич", context, 8) == ("Иван Ильич", None)
    # more new tokens than the context: the prompt alone must fit
    assert len(tokenizer(generate.fit_prompt(tokenizer, prompt, context, 1000)[0]).input_ids) <= context


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: 5-13 s on 2 shared cores
def test_cli_streams_prompt_and_continuation(ropegpt_dir, ropegpt, tmp_path):
    model, tokenizer = ropegpt
    (expected,) = generate_texts(model, tokenizer, [PROMPT], greedy=True, max_new_tokens=10)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "generate.py"), "--model", str(ropegpt_dir), "--prompt", PROMPT, "--greedy",
         "--max_new_tokens", "10", "--device", "cpu"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout and len(expected) > len(PROMPT)
