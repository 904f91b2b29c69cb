"""Run train_clm.py with one fault injected at a chosen moment (for tests/test_faults.py).

    FAULT=KIND:ARG python tests/_fault_probe.py ARGS...

The run is the real one; the probe only wraps a library call to deliver a real signal to this process at a
moment no timer could hit reliably:
    checkpoint_state:N  SIGKILL inside the save of checkpoint-N (weights and optimizer written, state not)
    final_save:_        SIGKILL inside the final save (weights written beside OUTPUT_DIR, tokenizer not)
    publish:N           SIGKILL after N files of the final model were moved into OUTPUT_DIR
    signal:NAME:N       SIGINT/SIGTERM to itself during training step N (the run's own handler reacts)
    pause:N             at step N, touch $FAULT_FLAG.paused and wait until $FAULT_FLAG exists (a run that
                        holds its folder while a test starts a second one)
"""

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import transformers  # noqa: E402
from transformers import TrainerState  # noqa: E402

import train_clm  # noqa: E402
from training.trainer import CLMTrainer  # noqa: E402

kind, _, arg = os.environ["FAULT"].partition(":")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if kind == "checkpoint_state":
    save_to_json = TrainerState.save_to_json

    def killing_save_to_json(self, path):
        if Path(path).parent.name == f"checkpoint-{arg}":
            die()
        return save_to_json(self, path)

    TrainerState.save_to_json = killing_save_to_json
elif kind == "final_save":
    tokenizer_save = transformers.PreTrainedTokenizerBase.save_pretrained

    def killing_tokenizer_save(self, save_directory, *args, **kwargs):
        if ".final-staging" in str(save_directory):
            die()
        return tokenizer_save(self, save_directory, *args, **kwargs)

    transformers.PreTrainedTokenizerBase.save_pretrained = killing_tokenizer_save
elif kind == "publish":
    replace, moved = os.replace, [0]

    def killing_replace(src, dst, **kwargs):
        replace(src, dst, **kwargs)
        if Path(src).parent.name == ".final-ready":
            moved[0] += 1
            if moved[0] == int(arg):
                die()

    os.replace = killing_replace
elif kind in ("signal", "pause"):
    name, _, step = arg.rpartition(":")
    step_of_training = CLMTrainer.training_step

    def step_with_fault(self, model, inputs, num_items_in_batch=None):
        if self.state.global_step + 1 == int(step):
            if kind == "signal":
                os.kill(os.getpid(), getattr(signal, name))
            else:
                flag = Path(os.environ["FAULT_FLAG"])
                Path(f"{flag}.paused").touch()
                while not flag.exists():
                    time.sleep(0.05)
        return step_of_training(self, model, inputs, num_items_in_batch)

    CLMTrainer.training_step = step_with_fault

sys.exit(train_clm.main(sys.argv[1:]))
