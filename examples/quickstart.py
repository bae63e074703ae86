"""Load a model and an SAE, find toxicity latents, steer them away, sample: offline on the reference world.

Run: python examples/quickstart.py (about a minute on a CPU). Swap "reference" for a hub model and an
SAE-Lens release/sae_id (e.g. "gpt2", "gpt2-small-res-jb/blocks.6.hook_resid_pre") where there is network.
"""

import saedetox as sd

lm = sd.load_model("reference")  # any HF causal LM: hub name, local folder or "reference"
sae = sd.load_sae("reference", lm)  # SAE-Lens SAE; centring and scaling follow the model
feats = sd.discover(lm, sae, sd.discovery_sets(), max_pairs=200)  # rank/select/test split -> Features
print(feats)  # the selected latents and their detector's AUROC on the test split
with sd.steer(lm, feats, mode="conditional", tier="high"):  # hooks live only inside the block
    for s in sd.sample(lm, "You are such a", n_samples=3, max_new_tokens=12, seed=0)[0]:
        print(repr(s.text))
