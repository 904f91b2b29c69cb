"""Generation settings shared by the sample callback (training/callbacks.py), generate.py and app.py."""

from __future__ import annotations


def sampling_settings(
    *, greedy: bool, temperature: float = 0.8, top_k: int = 50, top_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> dict:  # fmt: skip
    """Keyword arguments of `generate` for greedy decoding or sampling; top_p None leaves it out.

    Passing temperature/top-k/top-p with `do_sample=False` makes transformers warn that they are ignored,
    so greedy decoding gets none of them.
    """
    settings = {"repetition_penalty": repetition_penalty} if repetition_penalty != 1.0 else {}
    if greedy:
        return {**settings, "do_sample": False}
    settings.update(do_sample=True, temperature=temperature, top_k=top_k)
    if top_p is not None:
        settings["top_p"] = top_p
    return settings


def pad_token_id(tokenizer) -> int | None:
    """The id `generate` pads with: the tokenizer's pad token, else its eos (GPT-2 tokenizers have no pad)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
