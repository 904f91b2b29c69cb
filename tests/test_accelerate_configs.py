"""The accelerate YAMLs in accelerate_configs/: each loads through accelerate's own loader and launcher
validation, every key carries a comment, and cpu_2proc.yaml really starts two gloo processes.

Run: .venv/bin/python -m pytest tests/test_accelerate_configs.py -q   (two launches, ~5 s each on 2 cores)
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "accelerate_configs"
EXPECTED = {
    "v100_fp16.yaml": (DistributedType.NO, 1, "fp16"),
    "a40_bf16.yaml": (DistributedType.NO, 1, "bf16"),
    "multi_gpu_ddp.yaml": (DistributedType.MULTI_GPU, 2, "bf16"),
    "multi_node.yaml": (DistributedType.MULTI_GPU, 16, "bf16"),
    "fsdp.yaml": (DistributedType.FSDP, 2, "bf16"),
    "cpu_2proc.yaml": (DistributedType.MULTI_GPU, 2, "no"),
}


def test_the_set_of_configs_is_known():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_through_accelerate(name):
    path = CONFIGS / name
    config = load_config_from_file(str(path))  # also rejects unknown top-level keys
    assert isinstance(config, ClusterConfig)
    assert (config.distributed_type, config.num_processes, config.mixed_precision) == EXPECTED[name]
    # The launcher copies nested keys (fsdp_config) onto its arguments without checking them, so a typo there
    # would be ignored silently: every nested key must name a real `accelerate launch` option.
    parser = launch_command_parser()
    options = {action.dest for action in parser._actions}
    unknown = [key for key in config.fsdp_config if key not in options]
    assert not unknown, f"{name}: fsdp_config keys accelerate launch does not know: {unknown}"
    args, _, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path), "train_clm.py"]))
    assert args.num_processes == EXPECTED[name][1]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_key_is_commented(name):
    text = (CONFIGS / name).read_text()
    keys = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # Only the header of a nested section (fsdp_config:) may go without a comment of its own.
    uncommented = [line for line in keys if "#" not in line and not line.rstrip().endswith("_config:")]
    assert not uncommented, f"{name}: keys without a comment: {uncommented}"
    assert yaml.safe_load(text)


def test_fsdp_config_builds_the_plugin(monkeypatch):
    """The launcher's environment for fsdp.yaml yields an FSDP2 plugin that wraps RopeGPTBlock, sharded state dict."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    parser = launch_command_parser()
    args, _, _ = _validate_launch_command(parser.parse_args(["--config_file", str(CONFIGS / "fsdp.yaml"), "x.py"]))
    env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == ["RopeGPTBlock"]
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_probe(out_dir: Path, expected_world: int, use_cpu_env: bool) -> list[dict]:
    """`accelerate launch --config_file cpu_2proc.yaml tests/_ddp_probe.py`; the reports of every process."""
    env = {
        **os.environ,
        "GLOO_SOCKET_IFNAME": "lo",  # keep gloo on loopback whatever the hostname resolves to
        "OMP_NUM_THREADS": "1",  # two ranks share two cores with the rest of the suite
        "ACCELERATE_USE_CPU": "true",
    }
    if not use_cpu_env:
        del env["ACCELERATE_USE_CPU"]
    command = [
        sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch",
        "--config_file", str(CONFIGS / "cpu_2proc.yaml"),
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
        str(ROOT / "tests" / "_ddp_probe.py"), str(out_dir), str(expected_world),
    ]  # fmt: skip
    # A new session, so that a hang is ended with its torchrun workers and no orphan keeps the port.
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"accelerate launch hung for 120 s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("report-*.json"))]


def test_cpu_2proc_launches_two_gloo_processes(tmp_path):
    reports = _launch_probe(tmp_path, expected_world=2, use_cpu_env=True)
    assert sorted(r["rank"] for r in reports) == [0, 1]
    for report in reports:
        assert report["world_size"] == report["dist_world_size"] == 2
        assert report["backend"] == "gloo" and report["device_type"] == "cpu"
        assert report["all_reduce_sum"] == 3.0 and sorted(report["gathered"]) == [0, 1]


def test_cpu_2proc_without_use_cpu_env_is_two_lone_processes(tmp_path):
    """accelerate 1.15 does not pass the YAML's `use_cpu` to torchrun's workers: without ACCELERATE_USE_CPU
    (or Accelerator(cpu=True) / TrainingArguments(use_cpu=True)) each of the two processes on a GPU-less machine
    is a world of one, and would train on all the data alone. If this fails, accelerate fixed it: drop the
    variable from the YAML's instructions and this test."""
    reports = _launch_probe(tmp_path, expected_world=1, use_cpu_env=False)
    assert [(r["rank"], r["world_size"]) for r in reports] == [(0, 1), (0, 1)]
