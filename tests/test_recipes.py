"""Recipes that run on a CPU are run: train_clm.py accepts them as written, on the real shared corpora.

    .venv/bin/python -m pytest tests/test_recipes.py -q

(Every recipe is parsed by tests/test_train_clm.py::test_every_recipe_parses; this trains the CPU ones a
few steps, so a key that parses but breaks the run, or an input path that moved, is caught.)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT


@pytest.mark.slow
def test_tatar_tiny_trains_on_the_tatar_books(corpora_dir, tmp_path):
    recipe = ROOT / "recipes" / "tatar_tiny.yaml"
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train_clm.py"), str(recipe), "--output_dir", str(out), "--max_steps", "2",
         "--eval_steps", "2", "--save_steps", "2", "--max_eval_blocks", "4", "--sample_max_new_tokens", "4",
         "--report_to", "none"],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and math.isfinite(metrics["eval_bits_per_byte"])
    manifest = json.loads((out / "corpus" / "manifest.json").read_text())
    assert "tatar/books" in json.dumps(manifest, ensure_ascii=False)  # the recipe's own input, not a default
    prompts = yaml.safe_load(recipe.read_text(encoding="utf-8"))["sample_prompts"]
    assert prompts[0] in (out / "samples.txt").read_text(encoding="utf-8")
