"""Building a model from scratch for `train_clm.py`: our `ropegpt`/`lstm_lm` presets or any AutoConfig type."""

from __future__ import annotations

import logging

from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

import modeling  # noqa: F401  (registers ropegpt and lstm_lm with the Auto classes)
from modeling import LstmLMConfig, RopeGPTConfig

from .arguments import ArgumentsError, ModelArguments, parse_config_overrides

logger = logging.getLogger(__name__)

OUR_CONFIGS = {"ropegpt": RopeGPTConfig, "lstm_lm": LstmLMConfig}

# The field that bounds the context differs between model families.
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length")


def model_context_length(config: PretrainedConfig) -> int | None:
    """The longest sequence the model can attend over, or None when it has no limit (the LSTM)."""
    for name in CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def build_config(model_args: ModelArguments, tokenizer, block_size: int) -> PretrainedConfig:
    """The config of a model sized to `tokenizer` and `block_size`, from a preset or the type's defaults.

    The context (max_position_embeddings, n_positions...) is `block_size`, the length it trains at; the
    vocabulary and special-token ids follow the tokenizer; --config_overrides win over everything and
    are checked against the config's fields so a typo is an error, not a silently ignored key.
    """
    overrides = parse_config_overrides(model_args.config_overrides)
    tokens = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    tokens = {k: v for k, v in tokens.items() if v is not None}
    if model_args.model_type in OUR_CONFIGS:
        config_cls = OUR_CONFIGS[model_args.model_type]
        if model_args.preset and not hasattr(config_cls, "from_preset"):
            raise ArgumentsError(f"--preset is for ropegpt; {model_args.model_type} takes --config_overrides")
        base = config_cls.from_preset(model_args.preset) if model_args.preset else config_cls()
    else:
        try:
            base = AutoConfig.for_model(model_args.model_type)
        except ValueError:
            raise ArgumentsError(
                f"--model_type {model_args.model_type!r} is not a known model type: use ropegpt, lstm_lm, gpt2, "
                "llama or another transformers AutoConfig type"
            ) from None
    unknown = [k for k in overrides if not hasattr(base, k)]
    if unknown:
        raise ArgumentsError(
            f"--config_overrides names {unknown}, which {type(base).__name__} does not have: check the field names"
        )
    values = {**base.to_dict(), **tokens, **overrides}
    # The saved config must advertise the context the model is trained at: lm-eval, pipeline() and every other
    # client read max_position_embeddings as the longest input worth feeding, and a `tiny` preset (256) trained
    # on 128-token blocks is worse beyond 128. So the context is the block size unless the user pinned it
    # (then a block longer than that is reported below).
    for name in CONTEXT_FIELDS:
        if hasattr(base, name) and name not in overrides and isinstance(getattr(base, name), int):
            values[name] = block_size
    config = type(base).from_dict(values)
    if model_args.attn_implementation:
        config._attn_implementation = model_args.attn_implementation
    check_fits(config, tokenizer, block_size)
    return config


def check_fits(config: PretrainedConfig, tokenizer, block_size: int) -> None:
    """One-line errors when the data cannot go through the model: block too long, vocabulary too large."""
    context = model_context_length(config)
    if context is not None and block_size > context:
        raise ArgumentsError(
            f"--block_size {block_size} is larger than the model's context of {context} tokens: "
            f"lower --block_size or raise the context in --config_overrides"
        )
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise ArgumentsError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab}: "
            "use a smaller tokenizer (--vocab_size) or remove vocab_size from --config_overrides"
        )


def build_model(config: PretrainedConfig) -> PreTrainedModel:
    """A freshly initialised float32 causal LM for `config` (float32 master weights suit fp16 and bf16 AMP)."""
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built %s with %.2fM parameters", type(model).__name__, n_params / 1e6)
    return model
