"""Helper for test_export: an export whose saving stalls after the first shard (the test kills it there).

Usage: python slow_export.py MODEL_DIR SAE_DIR OUT MARKER [overwrite]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import transformers.modeling_utils as mu

from saedetox.model.load import load_model
from saedetox.steering.export import export
from saedetox.steering.spec import Intervention, SteeringSpec

model_dir, sae_dir, out, marker = sys.argv[1:5]
real_save = mu.safe_save_file


def stalled_save(*args, **kwargs):
    real_save(*args, **kwargs)  # one shard is on disk, the others are not: a partial checkpoint
    Path(marker).write_text("saving")
    time.sleep(300)


mu.safe_save_file = stalled_save
lm = load_model(model_dir, dtype="float32", device="cpu")
spec = SteeringSpec([Intervention(sae=sae_dir, latents=[1, 2], strength=2.0)])
export(lm, spec, out, overwrite=len(sys.argv) > 5, max_shard_size="20KB")
