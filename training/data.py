"""The data of a run: the train/validation text, the tokenizer, and the blocks the Trainer reads.

Each is made once on the main process (`main_process_first`) and found on disk by every other rank:
the corpus in output_dir/corpus, the tokenizer in output_dir/tokenizer, the blocks in datasets' cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
from transformers import AutoTokenizer, TrainingArguments

from corpora import CorpusArguments, load_corpus, prepare_corpus
from tokenizer_training import dataset_texts, train_tokenizer

from .arguments import DataArguments, load_tokenizer_dir
from .blocks import prepare_blocks
from .errors import ArgumentsError

logger = logging.getLogger(__name__)


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
