"""Run in a fresh process by test_vllm_engine: a plain vllm.LLM steered through the plugin.

Usage: python plugin_check.py MODEL_DIR TOKEN_IDS_JSON LEVEL... (with SAEDETOX_LEVELS set);
prints the greedy continuation of each level as one JSON line.
"""

import json
import sys

if __name__ == "__main__":
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    model, ids, levels = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    llm = LLM(model=model, dtype="float32", max_model_len=256, gpu_memory_utilization=0.1)
    sps = [
        SamplingParams(temperature=0, max_tokens=10, ignore_eos=True, extra_args={"saedetox_level": lv})
        for lv in levels
    ]
    out = llm.generate([TokensPrompt(prompt_token_ids=ids)] * len(levels), sps, use_tqdm=False)
    print("RESULT " + json.dumps([list(o.outputs[0].token_ids) for o in out]), flush=True)
    llm.llm_engine.engine_core.shutdown()
