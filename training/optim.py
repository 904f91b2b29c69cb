"""Muon for the hidden weight matrices and AdamW for everything else, as the one optimizer Trainer drives.

    accelerate launch train_clm.py recipes/tolstoy_tiny.yaml --optimizer muon --muon_learning_rate 0.02

The GPT-2 speedruns and nanochat train a transformer's 2-D hidden matrices (attention and MLP projections) with
Muon (momentum, then the update orthogonalised by Newton-Schulz iterations: `torch.optim.Muon`) and the rest
(embeddings, the head, norms, biases) with AdamW, which Muon cannot handle. Trainer expects one optimizer object,
so `MuonWithAdamW` holds both and shows their parameter groups as its own: Trainer's learning-rate schedule scales
every group, gradient clipping, DDP, checkpoints and resume (`state_dict`/`load_state_dict`) work unchanged.
`CLMTrainer.create_optimizer` (training/trainer.py) builds it, through the hook Trainer documents for that.
"""

from __future__ import annotations

import torch
from torch import nn


def hidden_matrix_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weights Muon should train: every matrix except the token/position embeddings and the output head
    (which are lookup tables and a classifier, not hidden linear maps). Works for any causal LM: RopeGPT's fused
    projections, Llama's q/k/v/o/gate/up/down, GPT-2's Conv1D weights."""
    excluded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        excluded.add(id(head.weight))
    return [p for p in model.parameters() if p.requires_grad and p.ndim == 2 and id(p) not in excluded]


class MuonWithAdamW(torch.optim.Optimizer):
    """`torch.optim.Muon` over the groups marked `use_muon`, `torch.optim.AdamW` over the others, as one optimizer.

    Both inner optimizers work on the very group dicts listed in `self.param_groups`, so a scheduler that sets
    `group["lr"]` reaches them. Muon's step is scaled to AdamW's update size (`adjust_lr_fn="match_rms_adamw"`), so
    its learning rate lives on AdamW's scale; each Muon group starts at its own `lr` (`--muon_learning_rate`).
    """

    def __init__(self, param_groups: list[dict], lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 momentum: float = 0.95):  # fmt: skip
        muon_groups = [g for g in param_groups if g.get("use_muon")]
        adamw_groups = [g for g in param_groups if not g.get("use_muon")]
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if muon_groups:
            self.optimizers["muon"] = torch.optim.Muon(
                muon_groups, lr=lr, momentum=momentum, adjust_lr_fn="match_rms_adamw"
            )
        if adamw_groups:
            self.optimizers["adamw"] = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, eps=eps)
        super().__init__([{"params": []}], {"lr": lr})  # a placeholder: the real groups are the inner ones
        self._link()

    def _link(self) -> None:
        self.param_groups = [group for optimizer in self.optimizers.values() for group in optimizer.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers.values():
            optimizer.step()
        return loss

    def state_dict(self) -> dict:
        return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state_dict[name])
        self._link()  # loading replaces the inner group dicts: show the new ones


def param_groups(model: nn.Module, decay_names: set[str], weight_decay: float, lr: float, *,
                 muon_lr: float | None = None, embedding_lr: float | None = None,
                 head_lr: float | None = None) -> list[dict]:  # fmt: skip
    """Trainer's two groups (with and without weight decay), each split by role with that role's learning rate:
    the hidden matrices (`use_muon`, when `muon_lr` is given), the token/position embeddings (`embedding_lr`),
    the untied output head (`head_lr`), and the rest (`lr`). A role whose rate is None keeps `lr`."""
    muon = {id(p) for p in hidden_matrix_parameters(model)} if muon_lr is not None else set()
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = {id(head.weight)} - embeddings if head is not None else set()  # a tied head is the embedding

    def role(p) -> str:
        return "muon" if id(p) in muon else "embedding" if id(p) in embeddings else "head" if id(p) in head else "rest"

    rates = {"muon": muon_lr, "embedding": embedding_lr, "head": head_lr, "rest": None}
    groups = []
    for name in rates:
        for decay in (True, False):
            params = [p for n, p in model.named_parameters()
                      if p.requires_grad and role(p) == name and (n in decay_names) == decay]  # fmt: skip
            if params:
                groups.append({"params": params, "use_muon": name == "muon", "lr": rates[name] or lr,
                               "weight_decay": weight_decay if decay else 0.0})  # fmt: skip
    return groups
