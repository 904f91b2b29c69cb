"""RopeGPT and the LSTM baseline, registered with transformers' Auto classes on import.

    import modeling
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("ropegpt", **modeling.PRESETS["tiny"]))
    model.save_pretrained("out")  # writes auto_map and copies the modeling files beside the weights

The saved folder then loads anywhere with `trust_remote_code=True`, without this package.
`modeling.preset_parameter_counts()` gives the presets' sizes.
"""

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_lstm_lm import LstmLMConfig
from .configuration_ropegpt import PRESETS, RopeGPTConfig
from .modeling_lstm_lm import LstmLMForCausalLM
from .modeling_ropegpt import RopeGPTForCausalLM, RopeGPTModel, RopeGPTPreTrainedModel

for _config, _model in ((RopeGPTConfig, RopeGPTForCausalLM), (LstmLMConfig, LstmLMForCausalLM)):
    # exist_ok: re-importing (importlib.reload, a second copy of the package on sys.path) must not raise
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModelForCausalLM.register(_config, _model, exist_ok=True)
    # save_pretrained then writes auto_map into config.json and copies the .py files beside the weights
    _config.register_for_auto_class()
    _model.register_for_auto_class("AutoModelForCausalLM")
# the base model (hidden states, no head) for AutoModel users: probing, embeddings, custom heads
AutoModel.register(RopeGPTConfig, RopeGPTModel, exist_ok=True)
RopeGPTModel.register_for_auto_class("AutoModel")


def preset_parameter_counts() -> dict[str, int]:
    """Parameters of each preset in `PRESETS` (tied embeddings counted once), built on the meta device."""
    counts = {}
    for name in PRESETS:
        with torch.device("meta"):  # shapes only: no memory, no initialisation time
            model = RopeGPTForCausalLM(RopeGPTConfig.from_preset(name))
        counts[name] = model.num_parameters()
    return counts


__all__ = [
    "PRESETS",
    "LstmLMConfig",
    "LstmLMForCausalLM",
    "RopeGPTConfig",
    "RopeGPTForCausalLM",
    "RopeGPTModel",
    "RopeGPTPreTrainedModel",
    "preset_parameter_counts",
]
