"""The README is the user's door: its Quickstart must stay true and CI must run its test command verbatim."""

import re
import subprocess

from conftest import ROOT


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_is_clone_plus_two_commands():
    lines = quickstart_commands()
    assert lines[0].startswith("git clone")
    assert len(lines) == 3, lines
    assert "train_clm.py" in lines[1] and "requirements.txt" in lines[1]
    assert "pytest" in lines[2] and "requirements.txt" in lines[2]


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == quickstart_commands()[2]


def test_ci_runs_the_readme_main_job_verbatim_offline():
    """The Quickstart's first command, word for word with only --max_steps/--output_dir appended, network off."""
    first = quickstart_commands()[1]
    lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if first in line]
    assert len(lines) == 1, "the main job must be run once by .ci/run"
    line = lines[0]
    assert line.startswith("offline ")
    appended = line.split(first, 1)[1].rstrip("'").split()
    assert appended[0::2] and set(appended[0::2]) <= {"--max_steps", "--output_dir"}, appended


def test_readme_names_every_top_level_entry():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    top = {line.split("/", 1)[0] for line in files.splitlines()} - {".gitignore", "pyproject.toml", ".ci"}
    missing = sorted(name for name in top if name not in text)
    assert not missing, f"README's file tree does not mention {missing}"
