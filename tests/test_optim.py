"""--optimizer muon: which parameters Muon trains, one optimizer object for Trainer (schedule, clipping, state),
and exact resume from its saved state.

    .venv/bin/python -m pytest tests/test_optim.py -q
"""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, TrainingArguments

from modeling import RopeGPTForCausalLM
from test_modeling_ropegpt import random_ids, tiny_config
from training.arguments import RunArguments
from training.optim import MuonWithAdamW, hidden_matrix_parameters
from training.trainer import CLMTrainer


def names_of(model, params) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("tied", [True, False])
def test_muon_takes_the_hidden_matrices_of_ropegpt(tied):
    model = RopeGPTForCausalLM(tiny_config(tie_word_embeddings=tied))
    chosen = names_of(model, hidden_matrix_parameters(model))
    expected = {f"model.layers.{i}.{m}.weight" for i in range(2)
                for m in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj")}  # fmt: skip
    assert chosen == expected  # never the embedding, the head, norms or biases


def test_muon_takes_the_hidden_matrices_of_llama_and_gpt2():
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, tie_word_embeddings=False))  # fmt: skip
    assert names_of(llama, hidden_matrix_parameters(llama)) == {
        f"model.layers.0.{m}.weight" for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    }  # fmt: skip
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=99, n_embd=32, n_layer=1, n_head=4, n_positions=64))
    assert names_of(gpt2, hidden_matrix_parameters(gpt2)) == {  # Conv1D matrices; wte and wpe are embeddings
        f"transformer.h.0.{m}.weight" for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    }


def muon_trainer(model, tmp_path, run: dict | None = None, **overrides) -> CLMTrainer:
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=3e-3, weight_decay=0.1, adam_beta2=0.99,
                             report_to="none", use_cpu=True, **overrides)  # fmt: skip
    run_args = RunArguments(**{"optimizer": "muon", "muon_learning_rate": 0.02, "sample_prompts": [], **(run or {})})
    return CLMTrainer(model=model, args=args, run_args=run_args)


def test_trainer_builds_one_optimizer_with_muon_and_adamw_groups(tmp_path):
    model = RopeGPTForCausalLM(tiny_config(tie_word_embeddings=False))
    optimizer = muon_trainer(model, tmp_path, run={"muon_momentum": 0.9}, adam_beta1=0.8).create_optimizer()
    assert isinstance(optimizer, MuonWithAdamW)
    muon = [g for g in optimizer.param_groups if g["use_muon"]]
    adamw = [g for g in optimizer.param_groups if not g["use_muon"]]
    assert names_of(model, [p for g in muon for p in g["params"]]) == names_of(model, hidden_matrix_parameters(model))
    assert {g["lr"] for g in muon} == {0.02} and {g["lr"] for g in adamw} == {3e-3}
    assert {g["momentum"] for g in muon} == {0.9}  # --muon_momentum reaches Muon's groups
    assert {g["betas"] for g in adamw} == {(0.8, 0.99)}  # and --adam_beta1/--adam_beta2 AdamW's
    assert {g["weight_decay"] for g in muon} == {0.1} and {g["weight_decay"] for g in adamw} == {0.0, 0.1}
    # every parameter exactly once; weight decay on matrices only, never on norms and biases (Trainer's rule)
    every = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(every) == len({id(p) for p in every}) == len(list(model.parameters()))
    no_decay = names_of(model, [p for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]])
    assert no_decay and all("norm" in n or n.endswith("bias") for n in no_decay)
    assert optimizer.param_groups[0] is optimizer.optimizers["muon"].param_groups[0]  # a scheduler's lr reaches the inner ones


def batches(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randint(4, 99, (4, 16), generator=generator)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_embedding_and_head_get_their_own_learning_rates(tmp_path, optimizer):
    model = RopeGPTForCausalLM(tiny_config(tie_word_embeddings=False))
    run = {"optimizer": optimizer, "embedding_learning_rate": 0.05, "head_learning_rate": 1e-3}
    built = muon_trainer(model, tmp_path, run).create_optimizer()
    rate = {name: g["lr"] for g in built.param_groups for name in names_of(model, g["params"])}
    assert rate["model.embed_tokens.weight"] == 0.05 and rate["lm_head.weight"] == 1e-3
    assert rate["model.layers.0.self_attn.qkv_proj.weight"] == (0.02 if optimizer == "muon" else 3e-3)
    assert rate["model.norm.weight"] == 3e-3


def test_head_learning_rate_needs_an_untied_head(tmp_path):
    from training.arguments import ArgumentsError

    model = RopeGPTForCausalLM(tiny_config())  # tied
    with pytest.raises(ArgumentsError, match="tie_word_embeddings=false"):
        muon_trainer(model, tmp_path, {"optimizer": "adamw", "head_learning_rate": 1e-3}).create_optimizer()


def train_steps(model, optimizer, scheduler, data, steps: int) -> None:
    for _ in range(steps):
        ids = next(data)
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def test_schedule_reaches_both_optimizers_and_state_resumes_exactly(tmp_path):
    def fresh():
        torch.manual_seed(0)
        model = RopeGPTForCausalLM(tiny_config()).train()
        optimizer = muon_trainer(model, tmp_path).create_optimizer()
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
        return model, optimizer, scheduler

    model, optimizer, scheduler = fresh()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, optimizer, scheduler, batches(), 6)
    assert optimizer.optimizers["muon"].param_groups[0]["lr"] == pytest.approx(0.02 / 7)  # the schedule scaled Muon's groups
    assert optimizer.optimizers["adamw"].param_groups[0]["lr"] == pytest.approx(3e-3 / 7)  # and AdamW's
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), name  # every parameter was trained by one of the two
    straight = {n: p.detach().clone() for n, p in model.named_parameters()}

    # stop after 3 steps, save model + optimizer + schedule, restore into fresh objects, do the other 3
    data = batches()
    model, optimizer, scheduler = fresh()
    train_steps(model, optimizer, scheduler, data, 3)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
               tmp_path / "state.pt")  # fmt: skip
    saved = torch.load(tmp_path / "state.pt", weights_only=True)  # as Trainer loads its checkpoints
    model, optimizer, scheduler = fresh()
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    assert optimizer.param_groups[0] is optimizer.optimizers["muon"].param_groups[0]  # still linked after loading
    train_steps(model, optimizer, scheduler, data, 3)
    for name, p in model.named_parameters():
        assert torch.allclose(p, straight[name], atol=1e-6), name


def test_muon_update_is_orthogonalised():
    """One Muon step on a matrix moves it by (nearly) an orthogonal matrix: singular values all alike."""
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.zeros(32, 64))
    optimizer = MuonWithAdamW([{"params": [weight], "use_muon": True, "lr": 0.1, "weight_decay": 0.0}], lr=0.1)
    weight.grad = torch.randn(32, 64) @ torch.diag(torch.logspace(0, 2, 64))  # badly conditioned gradient
    optimizer.step()
    singular = torch.linalg.svdvals(weight.detach())
    assert singular.max() / singular.min() < 2.0  # the gradient's were 100:1 apart


# ---------------------------------------------------------------- --document_masking


def test_document_masking_collator_restarts_positions_after_every_eos():
    from training.trainer import DocumentMaskingCollator

    eos = 3
    blocks = [{"input_ids": torch.tensor([5, 6, 3, 7, 8, 9, 3, 4]), "attention_mask": torch.ones(8),
               "labels": torch.tensor([5, 6, 3, 7, 8, 9, 3, 4])},
              {"input_ids": torch.tensor([3, 5, 5, 5, 3, 0, 0, 0]), "attention_mask": torch.tensor([1] * 5 + [0] * 3),
               "labels": torch.tensor([3, 5, 5, 5, 3, -100, -100, -100])}]  # fmt: skip
    batch = DocumentMaskingCollator(eos)(blocks)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 3, 0], [0, 0, 1, 2, 3, 0, 1, 2]]
    assert "attention_mask" not in batch and batch["labels"].shape == (2, 8) and batch["use_cache"] is False


def test_document_masking_batch_gives_each_document_its_own_logits():
    from training.trainer import DocumentMaskingCollator

    torch.manual_seed(0)
    model = RopeGPTForCausalLM(tiny_config(initializer_range=0.3)).eval()
    docs = [random_ids(batch=1, length=n, seed=n)[0] for n in (5, 7)]
    eos = torch.tensor([3])
    block = torch.cat([docs[0], eos, docs[1], eos])  # two documents packed in one block
    batch = DocumentMaskingCollator(3)([{"input_ids": block, "labels": block}])
    with torch.no_grad():
        packed = model(**batch).logits[0]  # as Trainer calls it, in eval mode as in evaluation
        first = model(torch.cat([docs[0], eos])[None]).logits[0]
        second = model(torch.cat([docs[1], eos])[None]).logits[0]
    assert (packed - torch.cat([first, second])).abs().max() < 1e-5


@pytest.mark.parametrize("decay,stable_until", [(0.4, 60), (30, 70)])
def test_warmup_stable_decay_takes_its_decay_as_a_share_of_the_run_or_as_steps(tmp_path, decay, stable_until):
    """num_decay_steps below 1 is a share of max_steps (as warmup_steps below 1 is); a whole number is steps."""
    kwargs = {"num_decay_steps": decay, "decay_type": "linear"}
    trainer = muon_trainer(RopeGPTForCausalLM(tiny_config()), tmp_path, warmup_steps=10, max_steps=100,
                           lr_scheduler_type="warmup_stable_decay", lr_scheduler_kwargs=kwargs)  # fmt: skip
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    factor = trainer.lr_scheduler.lr_lambdas[0]
    assert factor(5) == pytest.approx(0.5) and factor(stable_until - 1) == 1.0
    assert factor(stable_until + (100 - stable_until) // 2) == pytest.approx(0.5) and factor(100) == 0.0
    assert trainer.args.lr_scheduler_kwargs == kwargs  # the recipe's share is what the run saves


@pytest.mark.parametrize("kwargs", ['{}', '{"num_decay_steps": 0}', '{"num_decay_steps": "x"}'])
def test_warmup_stable_decay_without_a_decay_is_a_one_line_error(kwargs):
    from training.arguments import ArgumentsError, parse_arguments, validate_arguments

    model_args, data_args, run_args, training_args, _ = parse_arguments(
        ["--lr_scheduler_type", "warmup_stable_decay", "--lr_scheduler_kwargs", kwargs], default_recipe=None)
    with pytest.raises(ArgumentsError, match="num_decay_steps"):
        validate_arguments(data_args, training_args, run_args)
