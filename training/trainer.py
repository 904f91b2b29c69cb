"""The Trainer of a run: CLMTrainer (divergence check, per-role optimizers), the document-masking collator,
and `build_trainer`, which wires them with our metrics and sample callback."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, default_data_collator
from transformers.integrations import TensorBoardCallback

from .arguments import RunArguments, validate_run_arguments
from .callbacks import SampleCallback
from .errors import ArgumentsError
from .evaluation import TokenNLL, compute_metrics
from .optim import MuonWithAdamW, param_groups


def decay_steps(lr_scheduler_kwargs: dict, num_training_steps: int) -> int:
    """warmup_stable_decay's decay length in steps of a run of `num_training_steps`: `num_decay_steps` below 1 is a
    share of the run, as `warmup_steps` below 1 is (validate_arguments has refused a missing or non-positive one).
    The one reading of the rule, for Trainer's scheduler and bench_quality's wall-clock schedule alike."""
    decay = lr_scheduler_kwargs["num_decay_steps"]
    return max(1, round(decay * num_training_steps)) if decay < 1 else int(decay)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step."""


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

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """As Trainer's, except that warmup_stable_decay's `num_decay_steps` below 1 is a share of the run (as
        `warmup_steps` below 1 is), so a recipe's schedule fits whatever --max_steps it is given."""
        kwargs = self.args.lr_scheduler_kwargs or {}
        decay = kwargs.get("num_decay_steps")
        if self.args.lr_scheduler_type != "warmup_stable_decay" or not isinstance(decay, float) or decay >= 1:
            return super().create_scheduler(num_training_steps, optimizer)
        # Trainer reads the kwargs from the arguments; the share stays in them (saved, and re-read on resume)
        self.args.lr_scheduler_kwargs = {**kwargs, "num_decay_steps": decay_steps(kwargs, num_training_steps)}
        try:
            return super().create_scheduler(num_training_steps, optimizer)
        finally:
            self.args.lr_scheduler_kwargs = kwargs

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
