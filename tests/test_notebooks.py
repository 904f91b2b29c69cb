"""The notebooks: outputs stripped in git, and each one executed top to bottom (nbclient) on a CPU.

    .venv/bin/python -m pytest tests/test_notebooks.py -q

The slow tests run the notebooks as a user would (a fresh kernel, cwd = notebooks/), with their parameters
cell overridden through NB_* environment variables: tiny sizes, a local Tolstoy text from ../shared, the
tiny GPT-2 checkpoint as the "ruGPT3" base, and notebook 01's trained folder as notebook 03's "Hub" model.
"""

import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = ["01_train_from_scratch.ipynb", "02_finetune_rugpt3.ipynb", "03_generate_from_hub.ipynb"]
TIMEOUT = 240  # seconds per cell; whole notebooks take well under a minute each


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped(path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbformat)")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert "execution" not in cell.metadata, f"{path.name} cell {i} has timing metadata"
    assert "widgets" not in nb.metadata, f"{path.name} carries widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_reads_environment(path):
    """The first code cell after the set-up ones is tagged `parameters` and reads NB_* variables."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    assert "os.environ.get(\"NB_" in "".join(tagged[0]["source"])


# ---------------------------------------------------------------------------------------------- executed


def execute(name: str, env: dict, monkeypatch, cwd: Path = ROOT / "notebooks"):
    """Run notebook `name` in a fresh python3 kernel with `env` added to the environment; returns it executed."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbformat)")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nbclient ipykernel)")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed: the notebooks need a python3 kernel")
    for key, value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline", **env}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    # kernel "python3" is ipykernel's own spec: jupyter_client starts it with this interpreter (sys.executable).
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=TIMEOUT, resources={"metadata": {"path": str(cwd)}}
    )
    start = time.perf_counter()
    client.execute()
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    return nb


def outputs_text(nb) -> str:
    """Everything the executed notebook printed or displayed as text, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif "data" in out and "text/plain" in out.data:
                parts.append(out.data["text/plain"])
    return "\n".join(parts)


def has_image(nb) -> bool:
    return any("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


@pytest.fixture(scope="module")
def tolstoy_text(corpora_dir) -> Path:
    return corpora_dir / "tolstoy" / "txt" / "smert_ivana_ilicha.utf8bom.txt"


@pytest.fixture(scope="module")
def notebook01(tmp_path_factory, tolstoy_text):
    """Notebook 01 executed with tiny sizes; returns (executed notebook, its output folder)."""
    out = tmp_path_factory.mktemp("nb01") / "run"
    env = {
        "NB_DATA": str(tolstoy_text),
        "NB_OUTPUT_DIR": str(out),
        "NB_PRESET": "tiny",
        "NB_CONFIG_OVERRIDES": "num_hidden_layers=2,num_attention_heads=2,hidden_size=64,intermediate_size=128",
        "NB_VOCAB_SIZE": "512",
        "NB_BLOCK_SIZE": "64",
        "NB_BATCH_SIZE": "8",
        "NB_MAX_STEPS": "24",
        "NB_EVAL_STEPS": "8",
        "NB_MAX_NEW_TOKENS": "16",
    }
    with pytest.MonkeyPatch.context() as mp:
        nb = execute("01_train_from_scratch.ipynb", env, mp)
    return nb, out


@pytest.mark.slow
def test_01_train_from_scratch(notebook01):
    nb, out = notebook01
    for name in ("model.safetensors", "config.json", "tokenizer.json", "trainer_state.json", "metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "corpus" / "manifest.json").is_file() and (out / "tokenizer" / "tokenizer.json").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 24
    assert [h["step"] for h in state["log_history"] if "eval_loss" in h][:3] == [8, 16, 24]
    assert has_image(nb), "the loss plot did not render"
    text = outputs_text(nb)
    assert "Colab" not in text and "git clone" not in text  # the install cell did nothing outside Colab
    assert "T=0.3: Князь Андрей" in text and "T=1.3: Наташа" in text
    assert "perplexity" in text and "all " in text  # the score table and its total row
    assert "RopeGPTForCausalLM" in text


@pytest.fixture(scope="module")
def small_tolstoy(tmp_path_factory, tolstoy_text) -> Path:
    """Two short files of real Tolstoy (about 3,000 characters each): one train and one validation document.

    Evaluating a GPT-2-vocabulary model costs about 0.1 s per block of 64 tokens here, so the whole story's
    validation document (300 blocks) would dominate the notebook's run time.
    """
    folder = tmp_path_factory.mktemp("small-tolstoy")
    paragraphs = [p for p in tolstoy_text.read_text(encoding="utf-8-sig").splitlines() if len(p) > 100]
    for i, name in enumerate(("part1.txt", "part2.txt")):
        chunk, size = [], 0
        for p in paragraphs[i * 40 :]:
            if size > 3000:
                break
            chunk.append(p)
            size += len(p)
        (folder / name).write_text("\n".join(chunk) + "\n", encoding="utf-8")
    return folder


@pytest.mark.slow
def test_02_finetune(tmp_path, monkeypatch, small_tolstoy, checkpoints_dir):
    out = tmp_path / "ft"
    env = {
        "NB_BASE_MODEL": str(checkpoints_dir / "tiny-gpt2"),
        "NB_DATA": str(small_tolstoy),
        "NB_OUTPUT_DIR": str(out),
        "NB_BLOCK_SIZE": "64",
        "NB_BATCH_SIZE": "4",
        "NB_MAX_STEPS": "4",
        "NB_EVAL_STEPS": "4",
        "NB_MAX_NEW_TOKENS": "12",
    }
    nb = execute("02_finetune_rugpt3.ipynb", env, monkeypatch, cwd=ROOT)  # also from the repository root
    assert (out / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt2"
    text = outputs_text(nb)
    assert "before: Князь Андрей" in text and "after:  Князь Андрей" in text
    assert "held-out perplexity:" in text
    assert "accelerate launch --config_file accelerate_configs/multi_gpu_ddp.yaml" in text
    assert "0 GPU(s) here" in text


@pytest.mark.slow
def test_03_generate_from_hub(notebook01, monkeypatch):
    _, model_dir = notebook01
    nb = execute("03_generate_from_hub.ipynb", {"NB_HUB_MODEL": str(model_dir), "NB_MAX_NEW_TOKENS": "12"}, monkeypatch)
    text = outputs_text(nb)
    assert "Князь Андрей" in text
    # the sweep's table: 3 temperatures x 4 (top_k, top_p) settings, each continuing the prompt and scored
    table = next(out.data["text/plain"] for cell in nb.cells for out in cell.get("outputs", [])
                 if "data" in out and "top_k" in out.data.get("text/plain", ""))  # fmt: skip
    header, *rows = [line for line in table.splitlines() if line.strip()]
    assert header.split() == ["temperature", "top_k", "top_p", "perplexity", "text"]
    assert len(rows) == 12
    assert all("Наташа" in row and "NaN" not in row for row in rows)
