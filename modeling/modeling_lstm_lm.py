"""LstmLM: a character-level LSTM language model (the baseline), trainable by the same Trainer command as RopeGPT.

    import modeling  # registers "lstm_lm" with the Auto classes
    model = AutoModelForCausalLM.from_config(modeling.LstmLMConfig(vocab_size=len(tokenizer)))

Generation recomputes the LSTM over the whole sequence at every step instead of carrying (h, c) in a cache:
`generate`'s caches are key/value caches that grow along the sequence, and a recurrent state is not one; recomputing
is exact, and for the baseline's sizes (256 hidden units, a few hundred characters) it costs milliseconds per token.
Padding never reaches the state: when `attention_mask` has zeros (left-padded batched generation), each row's real
tokens are moved to the front, in order, before the LSTM reads them, and the outputs are put back in place, so a
batch of prompts of different lengths generates exactly what each prompt would alone.
"""

import torch
from torch import nn
from transformers import initialization as init
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import can_return_tuple

from .configuration_lstm_lm import LstmLMConfig


class LstmLMPreTrainedModel(PreTrainedModel):
    config_class = LstmLMConfig
    config: LstmLMConfig
    base_model_prefix = "lstm_lm"
    _no_split_modules = ["LSTM"]

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            # torch's own LSTM initialisation, routed through transformers' init so loaded weights are kept
            bound = module.hidden_size**-0.5
            for param in module.parameters():
                init.uniform_(param, -bound, bound)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # there is no key/value cache: generate must not build one


class LstmLMForCausalLM(LstmLMPreTrainedModel, GenerationMixin):
    """Embedding -> dropout -> LSTM -> dropout -> linear head over the vocabulary."""

    def __init__(self, config: LstmLMConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size)
        self.lstm = nn.LSTM(
            config.embedding_size,
            config.hidden_size,
            num_layers=config.num_hidden_layers,
            dropout=config.hidden_dropout if config.num_hidden_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`labels` are the input ids (shifted inside the loss; -100 is ignored); padded positions (0 in
        `attention_mask`) are skipped by the recurrence. Pass Trainer's `num_items_in_batch` through kwargs."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, E)
        hidden_states = self._read(self.dropout(inputs_embeds), attention_mask)  # (B, T, H)
        hidden_states = self.dropout(hidden_states[:, -logits_to_keep:])
        logits = self.lm_head(hidden_states)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def _read(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is None or bool(attention_mask.all()):
            return self.lstm(inputs_embeds)[0]
        # A stable sort of "is padding" puts each row's real tokens first, in their order; padding read after them
        # cannot change their outputs. The scatter puts every output back at its token's position.
        order = torch.sort((attention_mask == 0).to(torch.int8), dim=1, stable=True).indices  # (B, T)
        packed = inputs_embeds.gather(1, order[..., None].expand_as(inputs_embeds))
        hidden_states = self.lstm(packed)[0]
        return torch.empty_like(hidden_states).scatter_(1, order[..., None].expand_as(hidden_states), hidden_states)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, inputs_embeds=None, **kwargs):
        # Always the whole sequence: the state is recomputed at each step (no cache to continue from).
        return {"input_ids": input_ids, "attention_mask": attention_mask, "logits_to_keep": 1}


__all__ = ["LstmLMForCausalLM", "LstmLMPreTrainedModel"]
