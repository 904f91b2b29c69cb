"""Run train_clm.py while recording which blocks each rank trains on (for tests/test_train_clm.py).

    python tests/_train_probe.py train_clm.py ARGS...      (or under `accelerate launch`)

The real `CLMTrainer.training_step` still runs; the probe only notes the first tokens of every block of every
step and writes them to $PROBE_BATCHES/rank<N>.json when training ends.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train_clm  # noqa: E402
from training.trainer import CLMTrainer  # noqa: E402

steps: list[list[str]] = []
original = CLMTrainer.training_step


def recording_step(self, model, inputs, num_items_in_batch=None):
    steps.append([" ".join(map(str, row[:16].tolist())) for row in inputs["input_ids"]])
    return original(self, model, inputs, num_items_in_batch)


CLMTrainer.training_step = recording_step
code = train_clm.main(sys.argv[2:])
out = Path(os.environ["PROBE_BATCHES"])
out.mkdir(parents=True, exist_ok=True)
(out / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(steps))
sys.exit(code)
