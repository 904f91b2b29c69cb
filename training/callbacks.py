"""Trainer callbacks: samples of fixed prompts at each evaluation, so a user watches the text improve."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback

from .sampling import pad_token_id, sampling_settings

logger = logging.getLogger(__name__)


def decode_whole_characters(tokenizer, ids: list[int]) -> str:
    """The text of `ids` without a character cut in half at the end.

    A byte-level BPE token can hold part of a multi-byte UTF-8 character, so a sample stopped by
    `max_new_tokens` may end inside "з" and decode to "в глаз\ufffd". The last tokens are dropped until the
    text ends on a whole character (a UTF-8 character spans at most 4 bytes, hence at most 3 tokens go).
    """
    for drop in range(min(4, len(ids) + 1)):
        text = tokenizer.decode(ids[: len(ids) - drop], skip_special_tokens=True)
        if not text.endswith("\ufffd"):
            return text
    return tokenizer.decode(ids, skip_special_tokens=True)


@torch.no_grad()
def sample_continuations(
    model, tokenizer, prompts: list[str], max_new_tokens: int = 48, temperature: float = 0.8, seed: int = 0
) -> list[str]:
    """Sampled continuations of `prompts` (top-k 50), reproducible for a seed and isolated from training RNG."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    # fork_rng: sampling must not shift the random stream that dropout and data order use.
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_token_id(tokenizer),
                **sampling_settings(greedy=temperature <= 0, temperature=temperature, top_k=50),
            )
            outputs.append(prompt + decode_whole_characters(tokenizer, out[0, ids.shape[1] :].tolist()))
    model.train(was_training)
    return outputs


class SampleCallback(TrainerCallback):
    """At each evaluation, continue fixed prompts; append them to `samples.txt` and TensorBoard, and log them."""

    def __init__(self, tokenizer, prompts, path: Path, max_new_tokens=48, temperature=0.8, seed=0):
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.path = Path(path)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        self.tensorboard: TensorBoardCallback | None = None  # set by the trainer's owner when present
        self.last: list[str] = []

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or not self.prompts or model is None:
            return
        self.last = sample_continuations(
            model, self.tokenizer, self.prompts, self.max_new_tokens, self.temperature, self.seed
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(f"=== step {state.global_step}\n")
            for text in self.last:
                f.write(text.replace("\n", " ") + "\n")
        for text in self.last:
            logger.info("sample @ step %d: %s", state.global_step, text.replace("\n", " "))
        # TensorBoardCallback opens its writer lazily at train begin, so look it up only now.
        writer = getattr(self.tensorboard, "tb_writer", None)
        if writer is not None:
            writer.add_text("samples", "\n\n".join(self.last), state.global_step)


class StopOnSignal(TrainerCallback):
    """SIGINT/SIGTERM during training: save a checkpoint of the current step and stop, through Trainer's controls.

    The handler only records the signal; at the end of the step in progress the callback asks Trainer to
    save (`control.should_save`, which writes a normal, resumable checkpoint-N) and to stop. A second
    SIGINT raises KeyboardInterrupt at once for a user who will not wait. Under several processes the flag
    is all-reduced each step, so every rank stops after the same step (else the collectives would hang).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (e.g. not under a notebook worker)
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        logger.warning("%s received: saving a checkpoint after this step, then stopping", signal.Signals(signum).name)

    def _agreed_signal(self, args) -> int:
        value = self.signum or 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([value], dtype=torch.int64, device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            value = int(flag.item())
        return value

    def on_step_end(self, args, state, control, **kwargs):
        signum = self._agreed_signal(args)
        if signum:
            self.signum = signum
            if state.global_step < state.max_steps:
                control.should_save = True
            control.should_training_stop = True
        return control
