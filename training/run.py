"""The pieces of a training run shared by `train_clm.py` (from scratch) and `finetune.py` (pretrained).

Each step is a function a test can call: text → tokenizer → blocks → Trainer → output folder.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import datasets
import torch
import transformers
from transformers import (
    AutoTokenizer,
    EarlyStoppingCallback,
    Trainer,
    TrainerState,
    TrainingArguments,
    default_data_collator,
)
from transformers.integrations import TensorBoardCallback

from corpora import CorpusArguments, CorpusError, load_corpus, prepare_corpus
from .blocks import prepare_blocks
from publishing import PushError, UploadError, push_model
from tokenizer_training import dataset_texts, train_tokenizer

from .arguments import ArgumentsError, DataArguments, RunArguments, load_tokenizer_dir, validate_run_arguments
from .callbacks import SampleCallback, StopOnSignal
from .checkpoints import resolve_resume
from .evaluation import TokenNLL, compute_metrics
from .optim import MuonWithAdamW, param_groups
from .outputs import finished_step, save_final

logger = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step."""


# What a user can fix: printed as one line (no traceback) by the scripts, exit code 2.
USER_ERRORS = (ArgumentsError, CorpusError, TrainingDivergedError, PushError, UploadError)


def error_line(program: str, error: Exception) -> str:
    """`program: error: ...`, on a line of its own even when a progress bar was being drawn on stderr."""
    newline = "\n" if isinstance(error, TrainingDivergedError) else ""  # tqdm leaves its bar without a newline
    return f"{newline}{program}: error: {error}"


def setup_process(training_args: TrainingArguments) -> None:
    """Per-process setup: logging (INFO on the main process only) and CPU denormals flushed to zero.

    Near convergence gradients underflow into denormal floats, which x86 CPUs handle in microcode: an LSTM
    overfitting one batch measured 163 s with them and 0.6 s flushed. Flushing changes no result that matters
    (values below 1e-38) and is a no-op on GPUs.
    """
    torch.set_flush_denormal(True)
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level, stream=sys.stdout)
    transformers.utils.logging.set_verbosity(level)
    datasets.utils.logging.set_verbosity(logging.WARNING)


def load_text(data_args: DataArguments, training_args: TrainingArguments) -> datasets.DatasetDict:
    """The train/validation text: a prepared folder, or a corpus prepared once into output_dir/corpus."""
    if data_args.dataset_dir:
        path = Path(data_args.dataset_dir)
        if not path.exists():
            raise ArgumentsError(
                f"--dataset_dir {path} does not exist: prepare it with `python -m corpora ... --output_dir {path}`"
            )
        dataset = load_corpus(path)
    elif data_args.source:
        corpus_dir = Path(training_args.output_dir) / "corpus"
        with training_args.main_process_first(desc="preparing the corpus"):
            if not (corpus_dir / "manifest.json").exists():
                prepare_corpus(corpus_arguments(data_args, training_args, corpus_dir))
        dataset = load_corpus(corpus_dir)
    else:
        raise ArgumentsError("no data: give --dataset_dir DIR, or --source {tolstoy,libru,leipzig,text,hub} INPUT...")
    for split in ("train", "validation"):
        if split not in dataset or len(dataset[split]) == 0:
            raise ArgumentsError(
                f"the {split} split of the data is missing or empty: give more text or a larger --validation_split"
            )
    return dataset


def corpus_arguments(data_args: DataArguments, training_args: TrainingArguments, output_dir: Path):
    """CorpusArguments for `prepare_corpus` from the training run's data arguments."""
    values = {
        "source": data_args.source,
        "inputs": list(data_args.inputs),
        "output_dir": str(output_dir),
        "validation_split": data_args.validation_split,
        "seed": training_args.seed,
        "text_column": data_args.text_column,
        "snapshot_fallback": data_args.snapshot_fallback,
    }
    if data_args.corpus_cache_dir:
        values["cache_dir"] = data_args.corpus_cache_dir
    if data_args.base_url:
        values["base_url"] = data_args.base_url
    return CorpusArguments(**values)


def load_or_train_tokenizer(data_args: DataArguments, dataset, training_args: TrainingArguments):
    """--tokenizer_dir, or a tokenizer trained on the train split once and saved in output_dir/tokenizer."""
    if data_args.tokenizer_dir:
        return load_tokenizer_dir(data_args.tokenizer_dir)
    path = Path(training_args.output_dir) / "tokenizer"
    with training_args.main_process_first(desc="training the tokenizer"):
        if not (path / "tokenizer.json").exists():
            try:
                tokenizer = train_tokenizer(
                    dataset_texts(dataset["train"], max_bytes=data_args.tokenizer_sample_bytes, seed=training_args.seed),
                    kind=data_args.tokenizer_kind,
                    vocab_size=data_args.vocab_size,
                    model_max_length=data_args.block_size,
                )
            except ValueError as e:  # already one line naming vocab_size / kind and what to do
                raise ArgumentsError(str(e)) from None
            tokenizer.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def make_blocks(dataset, tokenizer, data_args: DataArguments, training_args: TrainingArguments):
    """Tokenized, grouped blocks of --block_size, computed once on the main process and cached by datasets."""
    with training_args.main_process_first(desc="tokenizing and grouping"):
        blocks, stats = prepare_blocks(dataset, tokenizer, data_args.block_size, num_proc=data_args.num_proc)
    for split, info in stats.items():
        logger.info("%s: %d documents, %d bytes -> %d tokens -> %d blocks of %d", split, info.documents,
                    info.bytes, info.tokens, info.blocks, data_args.block_size)
    for split, limit in (("train", data_args.max_train_blocks), ("validation", data_args.max_eval_blocks)):
        if limit:
            blocks[split] = blocks[split].select(range(min(limit, len(blocks[split]))))
    return blocks.with_format("torch")  # rows come out as tensors: no per-token Python lists in the loader


class CLMTrainer(Trainer):
    """Trainer that stops at once, naming the step, when the loss stops being a finite number, and that builds
    Muon + AdamW (`--optimizer muon`) or AdamW with per-role learning rates (`--embedding_learning_rate`,
    `--head_learning_rate`) through `create_optimizer`, the hook Trainer documents for that."""

    def __init__(self, *args, run_args: RunArguments | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.run_args = run_args or RunArguments()

    def create_optimizer(self, model=None):
        r = self.run_args
        per_role = r.optimizer == "muon" or r.embedding_learning_rate or r.head_learning_rate
        if self.optimizer is not None or not per_role:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if r.head_learning_rate and (head is None or head.weight is model.get_input_embeddings().weight):
            raise ArgumentsError("--head_learning_rate needs an untied head: add tie_word_embeddings=false to "
                                 "--config_overrides, or give --embedding_learning_rate")  # fmt: skip
        lr = self.args.learning_rate
        groups = param_groups(
            model, set(self.get_decay_parameter_names(model)), self.args.weight_decay, lr,
            muon_lr=(r.muon_learning_rate or lr) if r.optimizer == "muon" else None,
            embedding_lr=r.embedding_learning_rate, head_lr=r.head_learning_rate,
        )  # fmt: skip
        adam = dict(betas=(self.args.adam_beta1, self.args.adam_beta2), eps=self.args.adam_epsilon)
        if r.optimizer == "muon":
            self.optimizer = MuonWithAdamW(groups, lr=lr, momentum=r.muon_momentum, **adam)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=lr, **adam)
        return self.optimizer

    def _issue_warnings_after_load(self, load_result):
        # Tied weights (lm_head = the embeddings) are saved once, so they are "missing" from every checkpoint;
        # Trainer only recognises models that list them in _keys_to_ignore_on_save and would warn on each
        # best-model reload. Re-tie them and keep the warning for keys that are really missing.
        tied = set(getattr(self.model, "_tied_weights_keys", None) or ())
        missing = [key for key in load_result.missing_keys if key not in tied]
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            raise TrainingDivergedError(
                f"the loss became {loss.item()} at step {self.state.global_step + 1}: lower --learning_rate, "
                "use --bf16 instead of --fp16, or resume from the last checkpoint with --resume_from_checkpoint auto"
            )
        return loss


class DocumentMaskingCollator:
    """Stacks blocks like `default_data_collator` and adds `position_ids` that restart at 0 after every `<eos>`,
    dropping the padding mask: transformers' mask builder then reads each run of positions as its own document
    (the padding-free format of `DataCollatorWithFlattening`), so no token attends across a document boundary.
    A block's padded tail follows its last `<eos>` and is ignored by the loss (labels -100), so it needs no mask."""

    def __init__(self, eos_token_id: int):
        self.eos_token_id = eos_token_id

    def __call__(self, features: list[dict]) -> dict:
        batch = default_data_collator(features)
        ids = batch["input_ids"]  # (B, T)
        index = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        starts = torch.zeros_like(ids, dtype=torch.bool)
        starts[:, 1:] = ids[:, :-1] == self.eos_token_id  # a document starts right after an <eos>
        batch["position_ids"] = index - torch.where(starts, index, 0).cummax(dim=1).values
        batch.pop("attention_mask", None)
        # transformers reads packed documents only when no cache is passed: evaluation would otherwise build one
        batch["use_cache"] = False
        return batch


def build_trainer(model, tokenizer, blocks, training_args: TrainingArguments, run_args: RunArguments) -> CLMTrainer:
    """A Trainer wired with our metrics (perplexity, bits per byte), samples and optional early stopping."""
    # train_clm.py refused a wrong --model_type before any work; a pretrained model (finetune.py) is known only now
    validate_run_arguments(run_args, model.config.model_type)
    if run_args.document_masking and tokenizer.eos_token_id is None:
        raise ArgumentsError("--document_masking finds documents by <eos>, and the tokenizer has no eos_token")
    samples = SampleCallback(
        tokenizer,
        run_args.sample_prompts,
        Path(training_args.output_dir) / "samples.txt",
        max_new_tokens=run_args.sample_max_new_tokens,
        temperature=run_args.sample_temperature,
        seed=training_args.seed,
    )
    callbacks = [samples]
    if run_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=run_args.early_stopping_patience))
    trainer = CLMTrainer(
        model=model,
        args=training_args,
        train_dataset=blocks["train"],
        eval_dataset=blocks["validation"],
        processing_class=tokenizer,
        # Blocks are already equal-length tensors with labels: stacking is all a batch needs (Trainer's
        # default for a tokenizer would run its padding logic over every batch).
        data_collator=(
            DocumentMaskingCollator(tokenizer.eos_token_id) if run_args.document_masking else default_data_collator
        ),
        preprocess_logits_for_metrics=TokenNLL(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        run_args=run_args,
    )
    samples.tensorboard = next(
        (cb for cb in trainer.callback_handler.callbacks if isinstance(cb, TensorBoardCallback)), None
    )
    return trainer


class RunInterrupted(Exception):
    """SIGINT/SIGTERM stopped training after a checkpoint of the current step was saved."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by the signal: 130, 143


def interrupted_lines(program: str, error: RunInterrupted, argv: list[str]) -> str:
    """What the user reads after Ctrl-C: where the checkpoint is and the command that resumes it."""
    words = list(argv)
    if "--resume_from_checkpoint" in words:
        i = words.index("--resume_from_checkpoint")
        del words[i : i + 2]
    launcher = "accelerate launch" if "LOCAL_RANK" in os.environ else "python"
    saved = f"checkpoint saved in {error.checkpoint}" if error.checkpoint else "no checkpoint was saved"
    command = shlex.join([*launcher.split(), program, *words, "--resume_from_checkpoint", "auto"])
    return f"\n{program}: {error}: {saved}; resume with:\n  {command}"


def finish_from_checkpoint(trainer: CLMTrainer, checkpoint: str) -> dict:
    """The final model of a run whose training ended (checkpoint at max_steps) but whose final save was cut short.

    Restores the run's state and the weights the run would have ended with (the best checkpoint's under
    --load_best_model_at_end, else the last), without a training step.
    """
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    best = trainer.state.best_model_checkpoint
    source = best if trainer.args.load_best_model_at_end and best and Path(best).is_dir() else checkpoint
    logger.info("training already reached step %d: writing its final model from %s", trainer.state.global_step, source)
    # Trainer's own loader for resume and best-model reload: handles safetensors, shards and adapters.
    trainer._load_from_checkpoint(source)
    return {"finished_from_checkpoint": source}


def train_and_save(trainer: CLMTrainer, resume_from_checkpoint: str | None, extra: dict) -> dict:
    """Train (resuming if asked), evaluate, and write the output folder; returns the final metrics.

    SIGINT/SIGTERM during training save a checkpoint of the current step and raise RunInterrupted.
    """
    args = trainer.args
    resume = resolve_resume(resume_from_checkpoint, args.output_dir)
    stop = StopOnSignal()
    trainer.add_callback(stop)
    stop.install()
    try:
        if resume and finished_step(Path(args.output_dir), args.max_steps, resume) is not None:
            metrics = finish_from_checkpoint(trainer, resume)
        else:
            train_result = trainer.train(resume_from_checkpoint=resume)
            if stop.signum and trainer.state.global_step < trainer.state.max_steps:
                checkpoint = Path(args.output_dir) / f"checkpoint-{trainer.state.global_step}"
                saved = str(checkpoint) if checkpoint.is_dir() else None
                raise RunInterrupted(stop.signum, trainer.state.global_step, saved)
            metrics = {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_result.metrics.items()}
        metrics.update(trainer.evaluate())
        metrics["world_size"] = args.world_size
        metrics["global_step"] = trainer.state.global_step
        if trainer.is_fsdp_enabled:
            # Under FSDP's sharded state dict (accelerate_configs/fsdp.yaml), save_model writes no weights at all.
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        files = {}
        if trainer.is_world_process_zero():
            files = {
                "metrics.json": json.dumps(metrics, indent=2, ensure_ascii=False) + "\n",
                "run_args.json": json.dumps(extra, indent=2, ensure_ascii=False, default=str) + "\n",
            }
        # weights (safetensors), config with auto_map, model code, tokenizer: written beside, moved into place
        save_final(trainer, files)
    finally:
        stop.uninstall()
    return metrics


def describe_args(*instances) -> dict:
    """All resolved arguments as one JSON-able dict, per dataclass."""
    out = {}
    for inst in instances:
        out[type(inst).__name__] = inst.to_dict() if hasattr(inst, "to_dict") else asdict(inst)
    return out


def report_end(trainer: Trainer, metrics: dict, url: str | None) -> None:
    """The lines a run ends with (main process): steps, validation metrics, the model folder, the Hub URL."""
    if not trainer.is_world_process_zero():
        return
    print(
        f"done: {metrics['global_step']} steps, validation loss {metrics['eval_loss']:.4f}, "
        f"perplexity {metrics['eval_perplexity']:.2f}, bits per byte {metrics['eval_bits_per_byte']:.4f}; "
        f"model in {trainer.args.output_dir}"
    )
    if url:
        print(f"pushed to {url}")


def take_over_hub_push(training_args: TrainingArguments) -> dict | None:
    """--push_to_hub is done once at the end by push_to_hub.py (model card, safetensors-only allowlist).

    Trainer's own push would upload every checkpoint, pickles included, so it is switched off here and the
    target returned for `push_at_end`. Call before building the Trainer.
    """
    # Trainer pickles its arguments into training_args.bin of every checkpoint and of the model folder:
    # the token must not travel with them (push_at_end gets it from here).
    token, training_args.hub_token = training_args.hub_token, None
    if not training_args.push_to_hub:
        return None
    if not training_args.hub_model_id:
        raise ArgumentsError("--push_to_hub needs --hub_model_id user/name (the repository to create or update)")
    training_args.push_to_hub = False
    target = {
        "repo_id": training_args.hub_model_id,
        "private": bool(training_args.hub_private_repo),
        "token": token,
    }
    return target


def push_at_end(trainer: Trainer, target: dict | None) -> str | None:
    """Upload the finished output folder with publishing.push_model (main process only); returns the URL."""
    if target is None or not trainer.is_world_process_zero():
        return None
    url = push_model(trainer.args.output_dir, **target)
    logger.info("pushed to %s", url)
    return url
