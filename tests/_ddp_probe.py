"""Probe for a real multi-process launch; tests/test_accelerate_configs.py runs it, not pytest directly:

    ACCELERATE_USE_CPU=true accelerate launch --config_file accelerate_configs/cpu_2proc.yaml \
        tests/_ddp_probe.py OUT_DIR [EXPECTED_WORLD_SIZE=2]

Every process writes OUT_DIR/report-{pid}.json with the world it sees (named by pid: processes that each
believe they are alone would all be rank 0), then, in a real world, runs one all-reduce and one gather.
It exits non-zero when the world size is not the expected one.
"""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator


def main(out_dir: str, expected_world: int) -> None:
    accelerator = Accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    report = {
        "rank": rank,
        "world_size": world,
        "dist_world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "device_type": accelerator.device.type,
    }
    if world > 1:
        total = accelerator.reduce(torch.tensor([rank + 1.0]), reduction="sum")
        report["all_reduce_sum"] = total.item()  # 1 + 2 + ... + world
        report["gathered"] = accelerator.gather(torch.tensor([rank])).tolist()
    Path(out_dir, f"report-{os.getpid()}.json").write_text(json.dumps(report))
    # Neither process exits while the other still needs the process group. torch's world, not accelerate's:
    # processes that each believe they are alone have still joined one world of two, and one that exited
    # while the other was connecting would fail the other's init_process_group.
    if dist.is_initialized():
        dist.barrier()
    accelerator.end_training()
    assert world == expected_world, f"expected world size {expected_world}, got {world}"


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2)
