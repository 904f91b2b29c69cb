"""Training a causal LM with transformers' Trainer: the pieces `train_clm.py` and `finetune.py` are made of.

    from training.script import run_script        # the sequence both scripts run; each gives parse and prepare

In the order a run uses them:

- `arguments`: the argument dataclasses, recipes (YAML/JSON) and every check made before any work;
- `data`: the train/validation text (a corpus from `corpora`), the tokenizer (`tokenizer_training`), the blocks;
- `blocks`: tokenize-and-group, `prepare_blocks(dataset, tokenizer, block_size)`, cached by datasets;
- `models`: a new model from a preset or any AutoConfig type;
- `trainer`: `CLMTrainer`, the document-masking collator, `build_trainer`;
- `optim`, `evaluation`, `callbacks`: Muon + AdamW, perplexity and bits per byte, samples and signals;
- `loop`: train (resumed, stopped cleanly on a signal), evaluate and save the output folder;
- `checkpoints`, `outputs`: the checkpoint to resume from, the crash-safe output folder and its lock;
- `hub_push`: --push_to_hub, done once at the end through `publishing`;
- `script`: `run_script`, the shared sequence and its one-line errors;
- `sampling`: the generation settings shared by the sample callback, generate.py and app.py.
"""
