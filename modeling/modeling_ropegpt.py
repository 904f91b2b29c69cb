"""RopeGPT: a pre-norm GPT decoder with rotary position embeddings, read top to bottom
(norm -> rotary -> attention -> MLP -> block -> PreTrainedModel -> Model -> ForCausalLM; transformers'
modeling_llama.py has the same order except that its MLP comes before attention).

    import modeling  # registers "ropegpt" with the Auto classes
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_config(modeling.RopeGPTConfig.from_preset("tiny"))

This file travels to the Hub beside the weights (remote code): it imports only transformers, torch and its config.
Shapes: B batch, T query length, S key length (cache included), C width, nh heads, hs head size.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.utils import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_ropegpt import RopeGPTConfig


class RopeGPTNorm(nn.Module):
    """LayerNorm or RMSNorm (config.norm_type), computed in float32 so bf16/fp16 training keeps accurate statistics."""

    def __init__(self, config: RopeGPTConfig):
        super().__init__()
        self.norm_type, self.eps = config.norm_type, config.layer_norm_eps
        self.weight = nn.Parameter(torch.ones(config.hidden_size))
        # RMSNorm has no shift by definition; LayerNorm's follows the `bias` switch like nanoGPT's
        use_bias = config.bias and config.norm_type == "layernorm"
        self.bias = nn.Parameter(torch.zeros(config.hidden_size)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, dtype = (x.shape[-1],), x.dtype
        if self.norm_type == "rmsnorm":
            # normalise in float32, scale in the input dtype, as Llama does (its logits are matched to 1e-5 in tests)
            return self.weight * F.rms_norm(x.float(), shape, eps=self.eps).to(dtype)
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), shape, self.weight.float(), bias, self.eps).to(dtype)


class RopeGPTRotaryEmbedding(nn.Module):
    """cos/sin tables for the positions asked for, computed in float32 (bf16 angles drift after a few hundred steps).

    `config.rope_parameters["rope_type"]` picks the frequencies: "default" (theta only) or any of transformers'
    `ROPE_INIT_FUNCTIONS` ("linear", "dynamic", "yarn", "longrope", "llama3", ...), which stretch a trained
    model's context; "dynamic" and "longrope" recompute them as the sequence grows (`dynamic_rope_update`).
    """

    def __init__(self, config: RopeGPTConfig):
        super().__init__()
        self.config = config
        self.max_seq_len_cached = self.original_max_seq_len = config.max_position_embeddings
        self.rope_type = config.rope_parameters["rope_type"]
        self.rope_init_fn: Callable = (
            self.compute_default_rope_parameters if self.rope_type == "default" else ROPE_INIT_FUNCTIONS[self.rope_type]
        )
        inv_freq, self.attention_scaling = self.rope_init_fn(config)
        # Non-persistent: derived from the config, so `_init_weights` recomputes them after meta-device loading
        # (transformers 5 refills non-persistent buffers with garbage when it builds the model on the meta device).
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)  # (hs/2,)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)  # what "dynamic" resets to

    @staticmethod
    def compute_default_rope_parameters(config: RopeGPTConfig, device=None, **kwargs) -> tuple[torch.Tensor, float]:
        """Plain RoPE frequencies theta^(-2i/hs), and no scaling of cos/sin (the signature of ROPE_INIT_FUNCTIONS)."""
        theta, dim = config.rope_parameters["rope_theta"], config.head_dim
        return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)), 1.0

    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x: torch.Tensor, position_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inv_freq.dtype != torch.float32:  # `model.to(torch.bfloat16)` rounded them: rebuild them exactly
            inv_freq, _ = self.rope_init_fn(self.config, x.device)
            self.inv_freq, self.original_inv_freq = inv_freq, inv_freq.clone()
        freqs = position_ids[..., None].float() * self.inv_freq  # (B, T, hs/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, hs)
        return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    """Rotate (B, nh, T, hs) queries and keys; the half-split pairing is Llama's, so its checkpoints line up."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, hs): broadcast over heads
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain-matmul attention: the reference the other kernels are tested against, and the only one that can
    return the attention weights (`output_attentions=True`). Returns (B, T, nh, hs) and (B, nh, T, S)."""
    att = (query @ key.transpose(-2, -1)) * scaling  # (B, nh, T, S)
    if attention_mask is not None:
        att = att + attention_mask
    att = F.softmax(att, dim=-1, dtype=torch.float32).to(query.dtype)
    att = F.dropout(att, p=dropout, training=module.training)
    return (att @ value).transpose(1, 2), att


class RopeGPTAttention(nn.Module):
    """Multi-head causal self-attention with one fused QKV projection (one matmul instead of three)."""

    def __init__(self, config: RopeGPTConfig, layer_idx: int):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.num_heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = True  # read by transformers' FlashAttention integration
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.bias)
        self.o_proj.is_residual_projection = True

    def forward(self, hidden_states, position_embeddings, attention_mask=None, past_key_values=None, **kwargs):
        B, T, C = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(B, T, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.transpose(1, 3).unbind(dim=2)  # 3 x (B, nh, T, hs), views: no copies
        if self.config.qk_norm:  # unit-RMS queries and keys: attention logits cannot blow up early in training
            q, k = F.rms_norm(q, (self.head_dim,)), F.rms_norm(k, (self.head_dim,))
        q, k = apply_rotary_pos_emb(q, k, *position_embeddings)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)  # (B, nh, S, hs)
        # Resolved on every call through transformers' registry, so `model.set_attn_implementation(...)` switches
        # kernels at run time (sdpa, eager, flash_attention_2, flex_attention, or any registered kernel).
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        dropout = self.config.attention_dropout if self.training else 0.0
        y, weights = attention(self, q, k, v, attention_mask, scaling=self.scaling, dropout=dropout, **kwargs)
        return self.o_proj(y.reshape(B, T, C)), weights  # (B, T, nh, hs) -> (B, T, C); weights for output_attentions


class RopeGPTMLP(nn.Module):
    """GELU MLP (GPT-2), SwiGLU (Llama; gate and up fused into one matmul) or ReLU² (relu(x)^2: the speedruns')."""

    def __init__(self, config: RopeGPTConfig):
        super().__init__()
        self.mlp_type = config.mlp_type
        self.swiglu = config.mlp_type == "swiglu"
        width = 2 * config.intermediate_size if self.swiglu else config.intermediate_size
        self.up_proj = nn.Linear(config.hidden_size, width, bias=config.bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.bias)
        self.down_proj.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up_proj(x)  # (B, T, F) or (B, T, 2F) = [gate | up]
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            return self.down_proj(F.silu(gate) * up)
        if self.mlp_type == "relu2":
            return self.down_proj(F.relu(h).square())
        return self.down_proj(F.gelu(h, approximate="tanh"))


class RopeGPTBlock(GradientCheckpointingLayer):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: RopeGPTConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RopeGPTNorm(config)
        self.self_attn = RopeGPTAttention(config, layer_idx)
        self.post_attention_layernorm = RopeGPTNorm(config)
        self.mlp = RopeGPTMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, past_key_values=None, **kwargs):
        attn, _ = self.self_attn(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask, past_key_values, **kwargs
        )
        hidden_states = hidden_states + self.dropout(attn)
        return hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))


class RopeGPTPreTrainedModel(PreTrainedModel):
    config_class = RopeGPTConfig
    config: RopeGPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["RopeGPTBlock"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True
    _supports_flash_attn = True  # through transformers' integration, when `flash_attn` is installed
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True  # no host syncs in forward: static cache + torch.compile(fullgraph=True) work
    # `output_hidden_states` / `output_attentions` are recorded by hooks on these modules (`capture_outputs`)
    _can_record_outputs = {"hidden_states": RopeGPTBlock, "attentions": RopeGPTAttention}

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            # GPT-2: each residual branch adds to the stream, so its output projection is scaled down by the
            # number of additions (2 per layer) to keep the residual variance independent of depth; the speedruns
            # start them at zero instead (every block the identity), which their optimizers move off at once
            residual = getattr(module, "is_residual_projection", False)
            if residual:
                std = std / math.sqrt(2 * self.config.num_hidden_layers)
            if residual and self.config.zero_init_projections:
                init.zeros_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RopeGPTNorm):
            init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, RopeGPTRotaryEmbedding):
            inv_freq, _ = module.rope_init_fn(module.config)
            init.copy_(module.inv_freq, inv_freq)
            init.copy_(module.original_inv_freq, inv_freq)


class RopeGPTModel(RopeGPTPreTrainedModel):
    """Token embedding, the blocks and a final norm; returns hidden states (and the cache)."""

    def __init__(self, config: RopeGPTConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList([RopeGPTBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm = RopeGPTNorm(config)
        self.rotary_emb = RopeGPTRotaryEmbedding(config)
        self.post_init()

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """`attention_mask`: the (B, S) padding mask, or a ready 4-D mask. Rows packing several documents are told
        apart by `position_ids` restarting at 0 (transformers' `DataCollatorWithFlattening`): with no padding mask,
        each document then attends only to itself. `output_hidden_states`, `output_attentions` and `return_dict`
        are handled by `capture_outputs`."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, C)
        # Training never reads a cache back, and keeping one would only hold memory.
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if position_ids is None:
            # without a padding mask, positions simply continue from the cache; `generate` passes position_ids
            # computed from the mask for left-padded prompts, so each row's first real token gets position 0
            past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)[None] + past_length

        # transformers builds the mask each kernel wants (None where SDPA's is_causal suffices, padding, packed
        # documents, static caches longer than the sequence), without host syncs, so the forward compiles whole
        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=position_ids,
        )
        position_embeddings = self.rotary_emb(inputs_embeds, position_ids)

        hidden_states = self.dropout(inputs_embeds)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                position_embeddings,
                attention_mask=mask,
                past_key_values=past_key_values,
                position_ids=position_ids,  # FlashAttention reads packed documents from it
                **kwargs,
            )
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states), past_key_values=past_key_values)


class RopeGPTForCausalLM(RopeGPTPreTrainedModel, GenerationMixin):
    """RopeGPTModel with a language-modelling head (tied to the token embedding unless tie_word_embeddings=False)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: RopeGPTConfig):
        super().__init__(config)
        self.model = RopeGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`labels` are the input ids (shifted inside the loss; -100 is ignored). Pass Trainer's
        `num_items_in_batch` through kwargs so gradient accumulation averages over the whole batch."""
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        # generate asks only for the last position: skip projecting the whole prompt onto the vocabulary
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)  # (B, T, C)
        cap = self.config.logit_softcap
        if cap:
            # cap * tanh(logits / cap), with the division moved onto the V/C times smaller input (the head has no
            # bias) and tanh done in place on the fresh matmul output: the (B, T, V) passes are what cost here
            logits = cap * self.lm_head(hidden_states / cap).tanh_()
        else:
            logits = self.lm_head(hidden_states)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = ["RopeGPTForCausalLM", "RopeGPTModel", "RopeGPTPreTrainedModel"]
