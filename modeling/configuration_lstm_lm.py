"""LstmLM configuration: the character-level LSTM baseline that RopeGPT has to beat.

    from modeling import LstmLMConfig
    config = LstmLMConfig(vocab_size=tokenizer.vocab_size)

This file travels to the Hub beside the weights (remote code), so it imports nothing of the project.
"""

from transformers import PreTrainedConfig


class LstmLMConfig(PreTrainedConfig):
    """Embedding 128 -> 2-layer LSTM 256 -> linear head, with Hugging Face field names.

    Special token ids default to the project's tokenizers: <pad> 0, <unk> 1, <bos> 2, <eos> 3.
    """

    model_type = "lstm_lm"

    vocab_size: int = 256
    embedding_size: int = 128
    hidden_size: int = 256
    num_hidden_layers: int = 2
    hidden_dropout: float = 0.0
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    # generate recomputes the LSTM over the whole sequence at every step (see modeling_lstm_lm.py)
    use_cache: bool = False
    pad_token_id: int | None = 0
    unk_token_id: int | None = 1
    bos_token_id: int | None = 2
    eos_token_id: int | list[int] | None = 3

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Raise a one-line ValueError naming the first inconsistent field."""
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.hidden_dropout < 1.0:
            raise ValueError(f"hidden_dropout must be in [0, 1), got {self.hidden_dropout}")
        if self.tie_word_embeddings:
            raise ValueError("LstmLM cannot tie its embedding (embedding_size) to its head (hidden_size)")


__all__ = ["LstmLMConfig"]
