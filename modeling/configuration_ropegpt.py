"""RopeGPT configuration: a GPT-style decoder with rotary position embeddings.

    from modeling import RopeGPTConfig
    config = RopeGPTConfig.from_preset("small", vocab_size=tokenizer.vocab_size)

This file travels to the Hub beside the weights (remote code), so it imports nothing of the project.
"""

from transformers import PreTrainedConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

# Presets are data, not code paths. Parameter counts (tied embeddings, GELU MLP, LayerNorm and biases):
# tiny 1.8M, small 23.1M (the Tatar course model), medium 69.3M, base 123.6M (GPT-2 small without its
# learned position table). `modeling.preset_parameter_counts()` recomputes them.
PRESETS = {
    "tiny": dict(
        num_hidden_layers=4, num_attention_heads=4, hidden_size=128, intermediate_size=512,
        max_position_embeddings=256, vocab_size=8192,
    ),
    "small": dict(
        num_hidden_layers=6, num_attention_heads=8, hidden_size=512, intermediate_size=2048,
        max_position_embeddings=256, vocab_size=8192,
    ),
    "medium": dict(
        num_hidden_layers=8, num_attention_heads=12, hidden_size=768, intermediate_size=3072,
        max_position_embeddings=512, vocab_size=16384,
    ),
    "base": dict(
        num_hidden_layers=12, num_attention_heads=12, hidden_size=768, intermediate_size=3072,
        max_position_embeddings=1024, vocab_size=50257,
    ),
}

NORM_TYPES = ("layernorm", "rmsnorm")
MLP_TYPES = ("gelu", "swiglu", "relu2")
# "default" is plain RoPE; the others stretch a trained model's context with transformers' own RoPE functions
ROPE_TYPES = ("default", *ROPE_INIT_FUNCTIONS)


class RopeGPTConfig(PreTrainedConfig):
    """Hyper-parameters of RopeGPT, with Hugging Face field names (defaults: the `small` preset).

    `rope_theta=...` is accepted and standardised by transformers into
    `rope_parameters = {"rope_type": "default", "rope_theta": ...}`. To run a trained model past the context it
    was trained for, set another RoPE type from `ROPE_TYPES`, e.g.
    `rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}` (or "linear", "dynamic", ...).
    Special token ids default to the project's tokenizers: <pad> 0, <unk> 1, <bos> 2, <eos> 3.
    """

    model_type = "ropegpt"
    keys_to_ignore_at_inference = ["past_key_values"]

    vocab_size: int = 8192
    hidden_size: int = 512
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    max_position_embeddings: int = 256
    rope_parameters: dict | None = None
    norm_type: str = "layernorm"
    mlp_type: str = "gelu"
    bias: bool = True
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    # Speedrun-style switches (modded-nanogpt, nanochat); all off by default, so older checkpoints load unchanged.
    qk_norm: bool = False  # RMS-normalise each head's queries and keys before RoPE: bounded logits, higher LRs
    zero_init_projections: bool = False  # each block starts as the identity: attention and MLP outputs start at 0
    logit_softcap: float = 0.0  # > 0: logits = cap * tanh(logits / cap), so no logit outgrows the cap
    tie_word_embeddings: bool = True
    use_cache: bool = True
    pad_token_id: int | None = 0
    unk_token_id: int | None = 1
    bos_token_id: int | None = 2
    eos_token_id: int | list[int] | None = 3

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Raise a one-line ValueError naming the first inconsistent field."""
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"RoPE rotates pairs of channels, so the head dimension ({self.head_dim}) must be even")
        if self.norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {self.norm_type!r}")
        if self.mlp_type not in MLP_TYPES:
            raise ValueError(f"mlp_type must be one of {MLP_TYPES}, got {self.mlp_type!r}")
        rope_type = (self.rope_parameters or {}).get("rope_type", "default")
        if rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_parameters: rope_type must be one of {ROPE_TYPES}, got {rope_type!r}")
        try:  # transformers' own check of the keys each type needs ("factor" for yarn, ...)
            self.validate_rope()
        except KeyError as error:
            raise ValueError(f"rope_parameters: {error.args[0]}") from None
        for name in ("vocab_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.logit_softcap < 0:
            raise ValueError(f"logit_softcap must be 0 (off) or positive, got {self.logit_softcap}")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "RopeGPTConfig":
        """The named preset from `PRESETS`, with any field overridden (e.g. `vocab_size=` of your tokenizer)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


__all__ = ["PRESETS", "RopeGPTConfig"]
