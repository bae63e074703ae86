"""Facts the mirror reproduces: registry ids and folders, the published configs, the shrunk shapes.

Read from sae_lens 6.54 (``pretrained_saes.yaml`` and ``pretrained_sae_loaders.py``) and the
published hub files; tests/sae/test_hub_mirror.py checks them against the installed sae_lens
(registry folders, loader file names, conversions), so a drift fails a test instead of the mirror
quietly testing a layout nobody downloads any more.
"""

from __future__ import annotations

import re
from typing import Any

RES_JB_REPO = "jbloom/GPT2-Small-SAEs-Reformatted"
FS_REPO = "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8"
GEMMA_SCOPE_REPO = "google/gemma-scope-2b-pt-res"

RES_JB_D_SAE = 24576  # every gpt2-small-res-jb SAE: 768 -> 24576 (expansion 32)
FS_WIDTHS = (768, 1536, 3072, 6144, 12288, 24576, 49152, 98304)
PAPER_FS_WIDTHS = (768, 3072, 12288, 24576, 98304)
# gemma-scope-2b-pt-res-canonical  layer_12/width_X/canonical -> folder (registry saes_map)
GEMMA_SCOPE_L12_CANONICAL = {
    "16k": "layer_12/width_16k/average_l0_82",
    "32k": "layer_12/width_32k/average_l0_76",
    "65k": "layer_12/width_65k/average_l0_72",
    "262k": "layer_12/width_262k/average_l0_121",
    "524k": "layer_12/width_524k/average_l0_115",
    "1m": "layer_12/width_1m/average_l0_107",
}
# the gemma_2 loader's width_map
GEMMA_WIDTHS = {
    "4k": 4096,
    "16k": 16384,
    "32k": 32768,
    "65k": 65536,
    "131k": 131072,
    "262k": 262144,
    "524k": 524288,
    "1m": 1048576,
}
GEMMA_STAND_IN_VOCAB = 2048  # shrunk Gemma vocabulary (real: 256000); a full-shape Gemma gets the real size
GEMMA_2B_D_IN = 2304  # hard-coded in get_gemma_2_config_from_hf for repo ids containing "2b"

# --------------------------------------------------------------------------- real configs
# config.json contents of the real repos (as published; transformers_version kept as in the hub file)

REAL_CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 1024,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": 50257,
    },
    "gpt2-xl": {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 1600,
        "n_head": 25,
        "n_layer": 48,
        "n_positions": 1024,
        "output_past": True,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": 50257,
    },
    "google/gemma-2-2b": {
        "architectures": ["Gemma2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": 1,
        "final_logit_softcapping": 30.0,
        "head_dim": 256,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 2304,
        "initializer_range": 0.02,
        "intermediate_size": 9216,
        "max_position_embeddings": 8192,
        "model_type": "gemma2",
        "num_attention_heads": 8,
        "num_hidden_layers": 26,
        "num_key_value_heads": 4,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "torch_dtype": "float32",
        "transformers_version": "4.42.4",
        "use_cache": True,
        "vocab_size": 256000,
    },
    "google/gemma-2-9b": {
        "architectures": ["Gemma2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": 1,
        "final_logit_softcapping": 30.0,
        "head_dim": 256,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 3584,
        "initializer_range": 0.02,
        "intermediate_size": 14336,
        "max_position_embeddings": 8192,
        "model_type": "gemma2",
        "num_attention_heads": 16,
        "num_hidden_layers": 42,
        "num_key_value_heads": 8,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "torch_dtype": "float32",
        "transformers_version": "4.42.4",
        "use_cache": True,
        "vocab_size": 256000,
    },
}
REAL_SHARDS = {"gpt2": 1, "gpt2-xl": 1, "google/gemma-2-2b": 3, "google/gemma-2-9b": 8}

# shrunk shapes (full=False). Gemma-2-2b keeps hidden 2304 (Gemma Scope d_in) and reaches layer 12.
SMALL_OVERRIDES: dict[str, dict[str, Any]] = {
    "gpt2": {"n_embd": 64, "n_head": 4},  # 12 layers kept: blocks.6 / blocks.8 exist
    "gpt2-xl": {"n_embd": 16, "n_head": 2, "n_layer": 2},
    "google/gemma-2-2b": {
        "num_hidden_layers": 14,  # layer 12 exists and is not the last one
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 4,
        "query_pre_attn_scalar": 4,
        "intermediate_size": 8,
    },
    "google/gemma-2-9b": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "intermediate_size": 128,
    },
}

GPT2_GENERATION_CONFIG = {
    "_from_model_config": True,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
    "transformers_version": "4.26.0.dev0",
}
GEMMA_GENERATION_CONFIG = {
    "_from_model_config": True,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "pad_token_id": 0,
    "transformers_version": "4.42.4",
}

# jbloom/GPT2-Small-SAEs-Reformatted/blocks.L.hook_resid_pre/cfg.json (mats_sae_training era, pre-6.0).
# Key set and values as asserted by SAELens' own test of that file; only L-dependent fields vary.


def res_jb_cfg(hook: str, d_in: int = 768, d_sae: int = RES_JB_D_SAE) -> dict[str, Any]:
    layer = int(re.match(r"blocks\.(\d+)\.", hook).group(1))  # type: ignore[union-attr]
    return {
        "model_name": "gpt2-small",
        "hook_point": hook,
        "hook_point_layer": layer,
        "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext",
        "is_dataset_tokenized": False,
        "context_size": 128,
        "use_cached_activations": False,
        "cached_activations_path": f"activations/Skylion007_openwebtext/gpt2-small/{hook}",
        "d_in": d_in,
        "n_batches_in_buffer": 128,
        "total_training_tokens": 300000000,
        "store_batch_size": 32,
        "device": "mps",
        "seed": 42,
        "dtype": "torch.float32",
        "b_dec_init_method": "geometric_median",
        "expansion_factor": d_sae // d_in,
        "from_pretrained_path": None,
        "l1_coefficient": 8e-05,
        "lr": 0.0004,
        "lr_scheduler_name": None,
        "lr_warm_up_steps": 5000,
        "train_batch_size": 4096,
        "use_ghost_grads": False,
        "feature_sampling_window": 1000,
        "feature_sampling_method": None,
        "resample_batches": 1028,
        "feature_reinit_scale": 0.2,
        "dead_feature_window": 5000,
        "dead_feature_estimation_method": "no_fire",
        "dead_feature_threshold": 1e-08,
        "log_to_wandb": True,
        "wandb_project": "mats_sae_training_gpt2_small_resid_pre_5",
        "wandb_entity": None,
        "wandb_log_frequency": 100,
        "n_checkpoints": 10,
        "checkpoint_path": "checkpoints/mirror",
        "d_sae": d_sae,
        "tokens_per_buffer": 67108864,
        "run_name": f"{d_sae}-L1-8e-05-LR-0.0004-Tokens-3.000e+08",
    }


def fs_cfg(width: int, d_in: int = 768, d_sae: int | None = None) -> dict[str, Any]:
    """Feature-splitting cfg: same trainer generation, hook blocks.8.hook_resid_pre, d_sae = width."""
    d_sae = width if d_sae is None else d_sae
    cfg = res_jb_cfg("blocks.8.hook_resid_pre", d_in, d_sae)
    cfg["expansion_factor"] = max(d_sae // d_in, 1)
    cfg["wandb_project"] = "mats_sae_training_gpt2_feature_splitting_experiment"
    cfg["run_name"] = f"{d_sae}-L1-8e-05-LR-0.0004-Tokens-3.000e+08"
    return cfg
