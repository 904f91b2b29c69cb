"""Building a model from scratch for `train_clm.py`: our `ropegpt`/`lstm_lm` presets or any AutoConfig type."""

from __future__ import annotations

import logging

import torch
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


def _base_config(model_args: ModelArguments) -> PretrainedConfig:
    """The preset's or the model type's default config, before tokens and overrides."""
    if model_args.model_type in OUR_CONFIGS:
        config_cls = OUR_CONFIGS[model_args.model_type]
        if model_args.preset and not hasattr(config_cls, "from_preset"):
            raise ArgumentsError(f"--preset is for ropegpt; {model_args.model_type} takes --config_overrides")
        try:
            return config_cls.from_preset(model_args.preset) if model_args.preset else config_cls()
        except (KeyError, ValueError) as e:
            raise ArgumentsError(f"--preset {model_args.preset}: {e}") from None
    try:
        return AutoConfig.for_model(model_args.model_type)
    except ValueError:
        raise ArgumentsError(
            f"--model_type {model_args.model_type!r} is not a known model type: use ropegpt, lstm_lm, gpt2, "
            "llama or another transformers AutoConfig type"
        ) from None


def _typed_override(base: PretrainedConfig, key: str, value):
    """`value` checked against the type of the field's default: 'abc' for an int field is an error here."""
    default = getattr(base, key)
    expected = type(default)
    if default is None or value is None or isinstance(value, expected):
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float, bool, str):
        raise ArgumentsError(
            f"--config_overrides {key}={value!r}: {key} takes a {expected.__name__} (its default is {default!r})"
        )
    return value


def resolve_overrides(base: PretrainedConfig, text: str | None) -> dict:
    """--config_overrides as {real field name: typed value}; aliases (GPT-2's max_position_embeddings ->
    n_positions, via the config's attribute_map) are resolved, so the override and the context agree."""
    aliases = type(base).attribute_map
    out = {}
    for key, value in parse_config_overrides(text).items():
        if not hasattr(base, key):
            raise ArgumentsError(
                f"--config_overrides names {[key]}, which {type(base).__name__} does not have: check the field names"
            )
        out[aliases.get(key, key)] = _typed_override(base, key, value)
    return out


def build_config(model_args: ModelArguments, tokenizer, block_size: int) -> PretrainedConfig:
    """The config of a model sized to `tokenizer` and `block_size`, from a preset or the type's defaults.

    The context (max_position_embeddings, n_positions...) shrinks to `block_size`, the length it trains at, unless
    --config_overrides pins it, and never grows to it (a longer block is an error); the
    vocabulary and special-token ids follow the tokenizer; --config_overrides win over everything and
    are checked against the config's fields so a typo is an error, not a silently ignored key.
    `tokenizer` may be None (the early check of `check_model_arguments`): the type's vocabulary is kept.
    """
    base = _base_config(model_args)
    overrides = resolve_overrides(base, model_args.config_overrides)
    tokens = {}
    if tokenizer is not None:
        tokens = {
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    tokens = {k: v for k, v in tokens.items() if v is not None}
    values = {**base.to_dict(), **tokens, **overrides}
    # The saved config must advertise the context the model is trained at: lm-eval, pipeline() and every other
    # client read max_position_embeddings as the longest input worth feeding, and a `tiny` preset (256) trained
    # on 128-token blocks is worse beyond 128. So a context the user did not pin shrinks to the block size. It
    # never grows to it: a block longer than the context is an error below (a 100000-token block would
    # otherwise allocate a 40 GB mask).
    for name in CONTEXT_FIELDS:
        if name in values and name not in overrides and isinstance(values[name], int):
            values[name] = min(values[name], block_size)
    for alias in type(base).attribute_map:  # only real field names, or from_dict lets an alias win
        values.pop(alias, None)
    try:
        config = type(base).from_dict(values)
    except (ValueError, TypeError) as e:
        raise ArgumentsError(f"--config_overrides {model_args.config_overrides}: {' '.join(str(e).split())}") from None
    for key, value in overrides.items():
        if getattr(config, key) != value:  # a config whose __init__ recomputes the field would drop it silently
            raise ArgumentsError(
                f"--config_overrides {key}={value!r} did not take ({type(config).__name__} set it to "
                f"{getattr(config, key)!r}): set the fields it is derived from instead"
            )
    if model_args.attn_implementation:
        config._attn_implementation = model_args.attn_implementation
    if tokenizer is not None:
        check_fits(config, tokenizer, block_size)
    else:
        check_context(config, block_size)
    return config


def check_model_arguments(model_args: ModelArguments, block_size: int) -> None:
    """Before any work: the config builds, --block_size fits its context, and the model can be instantiated.

    The model is built on the meta device (no memory, milliseconds), which catches what a config's checks
    miss (e.g. a hidden size not divisible by the number of heads).
    """
    config = build_config(model_args, None, block_size)
    try:
        with torch.device("meta"):
            AutoModelForCausalLM.from_config(config)
    except (ValueError, TypeError, AssertionError, RuntimeError, ImportError) as e:
        first = " ".join(str(e).split()) or type(e).__name__
        raise ArgumentsError(f"the model cannot be built from these arguments ({first[:300]})") from None


def check_context(config: PretrainedConfig, block_size: int) -> None:
    """A one-line error when --block_size is longer than the model's context."""
    context = model_context_length(config)
    if context is not None and block_size > context:
        raise ArgumentsError(
            f"--block_size {block_size} is larger than the model's context of {context} tokens: "
            f"lower --block_size or raise the context in --config_overrides"
        )


def check_fits(config: PretrainedConfig, tokenizer, block_size: int) -> None:
    """One-line errors when the data cannot go through the model: block too long, vocabulary too large."""
    check_context(config, block_size)
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
