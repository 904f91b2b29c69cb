"""What external tools read from a model built by train_clm.py: the context it advertises.

    .venv/bin/python -m pytest tests/test_saved_model.py -q
"""

import pytest

from tokenizer_training import train_tokenizer
from training.arguments import ModelArguments
from training.models import build_config, build_model, model_context_length


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["Князь Андрей вошёл в гостиную."] * 50, kind="bpe", vocab_size=300)


@pytest.mark.parametrize("model_type,preset", [("ropegpt", "tiny"), ("gpt2", None)])
def test_the_saved_context_is_the_trained_block_size(tokenizer, tmp_path, model_type, preset):
    # `tiny` says 256 and GPT-2 1024; trained on 128-token blocks, the folder must say 128 (lm-eval scored the
    # default model 1.144 bpb at the advertised 256 against 1.1335 at 128)
    config = build_config(ModelArguments(model_type=model_type, preset=preset,
                                         config_overrides="num_hidden_layers=1" if preset else "n_layer=1,n_embd=32,n_head=2"),
                          tokenizer, block_size=128)  # fmt: skip
    assert model_context_length(config) == 128
    build_model(config).save_pretrained(tmp_path)
    from transformers import AutoConfig

    import modeling  # noqa: F401

    assert model_context_length(AutoConfig.from_pretrained(tmp_path)) == 128


def test_a_pinned_context_is_kept(tokenizer):
    config = build_config(ModelArguments(preset="tiny", config_overrides="max_position_embeddings=512"), tokenizer, 128)
    assert config.max_position_embeddings == 512


@pytest.mark.parametrize("kwargs", [", trust_remote_code=False", ""])
def test_the_tokenizer_of_a_model_folder_loads_without_the_remote_code_question(tokenizer, tmp_path, kwargs):
    """transformers 5 reads config.json (auto_map: our code) before the tokenizer: trust_remote_code=False skips
    its question; with nothing to read on stdin (CI, batch jobs) the question ends at once and the tokenizer loads."""
    import subprocess
    import sys

    config = build_config(ModelArguments(preset="tiny", config_overrides="num_hidden_layers=1"), tokenizer, 64)
    build_model(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    code = ("import sys; from transformers import AutoTokenizer\n"
            f"t = AutoTokenizer.from_pretrained(sys.argv[1]{kwargs})\n"
            "print('\\n' + type(t).__name__, t('Князь Андрей').input_ids)")  # fmt: skip  (\\n: after the question)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("Do you wish" in done.stdout + done.stderr) == (not kwargs)
    assert done.stdout.strip().splitlines()[-1].split()[0] == "TokenizersBackend"
    assert done.stdout.strip().endswith(str(tokenizer("Князь Андрей").input_ids))
