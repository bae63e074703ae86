"""Capability benchmarks through lm-evaluation-harness, on a model object with steering hooks attached.

The local tasks (``KNOWN_TASKS``) are lm-eval YAMLs shipped in ``saedetox/tasks/`` that read the
offline benchmark files of the data directory (``benchmarks/llmfoundry_local_data/`` and
``benchmarks/blimp/``). Their data path is a placeholder, filled in at run time: the YAMLs are
rendered into a temporary folder with the resolved absolute path and handed to lm-eval as
``TaskManager(include_path=...)``. The model runs as ``HFLM(pretrained=lm.model)``, so any
hooks on ``lm.model`` (a :class:`~saedetox.steering.steerer.Steerer`) apply to every forward pass.

``blimp_accuracy`` is a fast native scorer of the same BLiMP protocol (whole-sentence
log-probability after BOS, good > bad), for model cards and quick checks.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saedetox.data.location import data_file, resolve_data_dir
from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.fluency import sequence_nll
from saedetox.model.load import LoadedModel
from saedetox.model.tokens import bos_id, encode_text
from saedetox.steering.steerer import Steerer

KNOWN_TASKS: tuple[str, ...] = ("lambada", "piqa", "arc_easy", "winogrande", "copa", "blimp")
TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
BLIMP_FILE = "benchmarks/blimp/blimp_first100_per_paradigm.jsonl"
_PREFIX = "saedetox_"
_DATA_RE = re.compile(r'"@DATA_DIR@/([^"]+)"')
_QUIET_LOGGERS = ("lm_eval", "lm-eval", "datasets", "transformers")
#: lm-eval tasks built from the local YAMLs, by (task names, data folder): rebuilt only when those change
_BUILT: dict[tuple[tuple[str, ...], str], list[Any]] = {}


# --------------------------------------------------------------------------- task files


def render_tasks(tasks: Sequence[str], out_dir: str | Path, data_dir: str | Path | None = None) -> list[str]:
    """Write the YAMLs of local ``tasks`` into ``out_dir`` with absolute data paths; return lm-eval task names.

    Raises :class:`SaedetoxError` for an unknown task or a missing data file.
    """
    out = Path(out_dir)
    names = []
    for task in tasks:
        if task not in KNOWN_TASKS:
            raise SaedetoxError(f"Unknown capability task '{task}': use {', '.join(KNOWN_TASKS)}.")
        text = (TASKS_DIR / f"{task}.yaml").read_text(encoding="utf-8")
        text = _DATA_RE.sub(lambda m: json.dumps(str(data_file(m.group(1), data_dir))), text)
        (out / f"{task}.yaml").write_text(text, encoding="utf-8")
        names.append(_PREFIX + task)
    shutil.copy(TASKS_DIR / "blimp_utils.py", out / "blimp_utils.py")
    return names


def interleave_by_paradigm(uids: Sequence[str]) -> list[int]:
    """Row order that takes the 1st pair of every paradigm, then the 2nd, …, so a prefix covers all paradigms."""
    first_seen: dict[str, int] = {}
    count: dict[str, int] = {}
    keys = []
    for i, uid in enumerate(uids):
        first_seen.setdefault(uid, len(first_seen))
        keys.append((count.get(uid, 0), first_seen[uid], i))
        count[uid] = count.get(uid, 0) + 1
    return [k[2] for k in sorted(keys)]


def load_blimp_pairs(data_dir: str | Path | None = None, limit: int | None = None) -> list[tuple[str, str]]:
    """(good, bad) sentence pairs of the local BLiMP file, in the same interleaved order as the lm-eval task."""
    path = data_file(BLIMP_FILE, data_dir)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    order = interleave_by_paradigm([r["UID"] for r in rows])[:limit]
    return [(rows[i]["sentence_good"], rows[i]["sentence_bad"]) for i in order]


# --------------------------------------------------------------------------- lm-eval


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence lm-eval, datasets and transformers logging (and datasets' progress bars) for one run."""
    from datasets.utils import logging as ds_logging  # deferred with lm-eval (below): only capability runs need it

    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    bars = ds_logging.is_progress_bar_enabled()
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    ds_logging.disable_progress_bar()
    try:
        # lm-eval's own tqdm bars (tokenising, log-likelihood requests) write to stderr and take no
        # switch; our progress line for the run is enough
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        if bars:
            ds_logging.enable_progress_bar()


@contextmanager
def _no_env_probes(evaluator: Any) -> Iterator[None]:
    """lm-eval records ``git describe`` of the working directory, which prints "fatal: not a git repository"
    outside one (a subprocess writing to the terminal, past any redirect), and an environment report
    (``torch.utils.collect_env``: subprocesses, about half a second per call). Neither is ours to record:
    a run records its own versions."""
    saved = {name: getattr(evaluator, name, None) for name in ("get_git_commit_hash", "add_env_info")}
    if saved["get_git_commit_hash"] is not None:
        evaluator.get_git_commit_hash = lambda: None
    if saved["add_env_info"] is not None:
        evaluator.add_env_info = lambda results: None
    try:
        yield
    finally:
        for name, fn in saved.items():
            if fn is not None:
                setattr(evaluator, name, fn)


def evaluate_tasks(
    lm: LoadedModel,
    tasks: Sequence[str],
    limit: int | None = None,
    batch_size: int = 16,
    data_dir: str | Path | None = None,
    online_tasks: bool = False,
    log_samples: bool = False,
) -> dict[str, Any]:
    """Run ``tasks`` zero-shot through ``lm_eval.simple_evaluate`` on ``lm.model`` as it is; return lm-eval's dict.

    Local names (``KNOWN_TASKS``) use the shipped YAMLs; with ``online_tasks`` any other name
    goes to lm-eval's own registry (which downloads its data from the Hugging Face hub).
    """
    # deferred: lm-eval and its datasets stack take seconds to import, and only capability runs need them
    import lm_eval
    import lm_eval.evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict

    if not tasks:
        raise SaedetoxError("No capability tasks given.")
    unknown = [t for t in tasks if t not in KNOWN_TASKS]
    if unknown and not online_tasks:
        raise SaedetoxError(
            f"Unknown capability task '{unknown[0]}': use {', '.join(KNOWN_TASKS)} "
            "(or pass online_tasks=True for lm-eval's hub tasks, which need network)."
        )
    with tempfile.TemporaryDirectory(prefix="saedetox-tasks-") as tmp, _quiet():
        names = [t for t in tasks if t in KNOWN_TASKS]
        key = (tuple(names), str(resolve_data_dir(data_dir)) if names else "")
        local: list[Any] = list(_BUILT.get(key, []))  # built lm-eval tasks: loading their data takes seconds
        local_names = render_tasks(names, tmp, data_dir) if names and not local else []
        manager = TaskManager(include_path=tmp, include_defaults=bool(unknown))
        if local_names:
            local = list(get_task_dict(local_names, manager).values())
            _BUILT[key] = list(local)
        missing = [t for t in unknown if t not in manager.all_tasks]
        if missing:
            raise SaedetoxError(f"lm-eval knows no task named '{missing[0]}'; check `lm-eval ls tasks`.")
        model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size)
        try:
            with _no_env_probes(lm_eval.evaluator):
                return lm_eval.simple_evaluate(
                    model=model,
                    tasks=local + unknown,
                    num_fewshot=0,
                    limit=limit,
                    task_manager=manager,
                    log_samples=log_samples,
                    bootstrap_iters=0,
                    random_seed=None,
                    numpy_random_seed=None,
                    torch_random_seed=None,
                )
        except (OSError, ConnectionError) as err:
            if not unknown:
                raise
            raise SaedetoxError(
                f"Could not load the data of lm-eval task(s) {', '.join(unknown)} ({type(err).__name__}); "
                f"they come from the Hugging Face hub and need network. Offline, use {', '.join(KNOWN_TASKS)}."
            ) from None


@dataclass
class CapabilityScores:
    """Benchmark results of one run: accuracies (``{task: acc}``) and perplexity-type numbers (``{task: ppl}``).

    They are kept apart because they do not average: ``metrics.json`` holds them as ``capability``
    and ``capability_ppl``.
    """

    accuracy: dict[str, float] = field(default_factory=dict)
    perplexity: dict[str, float] = field(default_factory=dict)


def run_capability(
    lm: LoadedModel,
    tasks: Sequence[str] = KNOWN_TASKS,
    limit: int | None = None,
    steerer: Steerer | None = None,
    batch_size: int = 16,
    data_dir: str | Path | None = None,
    online_tasks: bool = False,
) -> CapabilityScores:
    """Zero-shot accuracy per task and, apart, perplexities (LAMBADA's), with ``steerer``'s hooks active when given.

    ``accuracy[task]`` is lm-eval's ``acc``; ``perplexity[task]`` its ``perplexity`` (other
    perplexity-type metrics as ``task_metric``). Other metrics of online tasks (``acc_norm``, …)
    are not kept. ``limit`` caps the items per task (the first ones; BLiMP interleaves its
    paradigms). A steerer that is already attached stays attached; otherwise it is attached for
    the run only.
    """
    if steerer is not None and steerer.lm is not lm:
        raise SaedetoxError("The steerer is attached to a different model than the one being evaluated.")
    hooks = nullcontext() if steerer is None or steerer.is_attached else steerer
    with hooks:
        res = evaluate_tasks(lm, tasks, limit, batch_size, data_dir, online_tasks)
    out = CapabilityScores()
    for name, metrics in res["results"].items():
        short = name[len(_PREFIX) :] if name.startswith(_PREFIX) else name
        for key, value in metrics.items():
            metric, _, filt = key.partition(",")
            if not filt or "stderr" in metric or not isinstance(value, (int, float)):
                continue
            if metric == "acc":
                out.accuracy[short] = float(value)
            elif metric == "perplexity":
                out.perplexity[short] = float(value)
            elif "perplexity" in metric:
                out.perplexity[f"{short}_{metric}"] = float(value)
    rank = {t: i for i, t in enumerate(tasks)}  # in the order asked for, whatever order lm-eval reports
    out.accuracy = dict(sorted(out.accuracy.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    return out


# --------------------------------------------------------------------------- native BLiMP


def _pair(item: tuple[str, str] | Mapping[str, str]) -> tuple[str, str]:
    if isinstance(item, Mapping):
        return item["sentence_good"], item["sentence_bad"]
    good, bad = item
    return good, bad


def blimp_logprobs(
    lm: LoadedModel, pairs: Sequence[tuple[str, str] | Mapping[str, str]], batch_size: int = 64
) -> np.ndarray:
    """``[n, 2]`` summed log-probabilities of (good, bad) sentences, each scored after BOS."""
    bos = bos_id(lm.tokenizer)
    rows = []
    for item in pairs:
        for sentence in _pair(item):
            ids = encode_text(lm.tokenizer, sentence)
            if not ids:
                raise SaedetoxError("A BLiMP pair holds an empty sentence.")
            rows.append(([bos, *ids], 1))
    if not rows:
        raise SaedetoxError("No BLiMP pairs given.")
    return -sequence_nll(lm, rows, batch_size)[:, 0].reshape(-1, 2)


def blimp_accuracy(
    lm: LoadedModel, pairs: Sequence[tuple[str, str] | Mapping[str, str]], batch_size: int = 64
) -> float:
    """Share of pairs whose good sentence has the higher log-probability (BOS prepended), as the lm-eval task."""
    lp = blimp_logprobs(lm, pairs, batch_size)
    return float((lp[:, 0] > lp[:, 1]).mean())
