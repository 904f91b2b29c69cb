"""training/callbacks.py: samples end on whole characters.

    .venv/bin/python -m pytest tests/test_callbacks.py -q
"""

from tokenizer_training import train_tokenizer
from training.callbacks import decode_whole_characters


def test_a_sample_cut_inside_a_character_drops_the_half_character():
    # Trained on Latin text only, the byte-level BPE keeps each Cyrillic letter as two byte tokens.
    tokenizer = train_tokenizer(["the quick brown fox jumps over the lazy dog"] * 20, kind="bpe", vocab_size=300)
    ids = tokenizer("в глаз", add_special_tokens=False).input_ids
    assert tokenizer.decode(ids[:-1]).endswith("\ufffd")  # the cut that showed as "в глаз�" in samples.txt
    assert decode_whole_characters(tokenizer, ids[:-1]) == "в гла"
    assert decode_whole_characters(tokenizer, ids) == "в глаз"
    assert decode_whole_characters(tokenizer, []) == ""
