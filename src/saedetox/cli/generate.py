"""``saedetox generate``: sample continuations, steered or not."""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Annotated

import typer

from saedetox.cli.fields import Choices, with_options
from saedetox.cli.method_options import TrainJudgeOpt, method_setup
from saedetox.cli.options import (
    DataDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    SteeringOptions,
    build_spec,
    check_method_features,
    load_lm,
)
from saedetox.data.attacks import attack_names
from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.backends import backend_names
from saedetox.methods.registry import method_names  # light: names and declarations


@with_options
def generate_cmd(
    model: ModelOpt = "reference",
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", "-p", metavar="<str>", help="Prompt text (repeatable).")
    ] = None,
    prompts_file: Annotated[
        str | None, typer.Option("--prompts", help="File of prompts (txt/jsonl/csv; RTP jsonl as evaluate reads it).")
    ] = None,
    field: Annotated[str, typer.Option("--field", help="Field/column for jsonl/csv prompt files.")] = "text",
    steering: SteeringOptions = SteeringOptions(),
    n_samples: Annotated[int, typer.Option("--n-samples", "-n")] = 1,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 20,
    top_p: Annotated[float, typer.Option("--top-p")] = 0.9,
    temperature: Annotated[float, typer.Option("--temperature")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    chat: Annotated[
        bool, typer.Option("--chat", help="Wrap each prompt in the tokenizer's chat template (chat / instruct models).")
    ] = False,
    backend: Annotated[
        str,
        typer.Option("--backend", help="hf (saedetox's sampler) or vllm (vLLM with the steering in its workers)."),
        Choices(backend_names),
    ] = "hf",
    attack: Annotated[
        str | None,
        typer.Option("--attack", help="Adversarial context around each prompt (docs/attacks.md)."),
        Choices(attack_names),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="Sample with a registered method (e.g. rectification, meandiff); default: the steering options alone.",
        ),
        Choices(method_names),
    ] = None,
    train_judge: TrainJudgeOpt = None,
    data_dir: DataDirOpt = None,
    out: Annotated[str | None, typer.Option("--out", help="Write samples as JSONL here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
) -> None:
    """Sample continuations, steered or not.

    Example: saedetox generate -p "You are such a" --sae reference --features features.json --tier high
    """
    from saedetox.data.attacks import attack_contexts  # deferred: see saedetox.cli.app
    from saedetox.data.readers import (
        Prompt,
        read_prompt_texts,  # deferred: see saedetox.cli.app
    )
    from saedetox.eval.metrics.paired import prompt_uids
    from saedetox.eval.runs.generation import sample_method
    from saedetox.eval.sampler.backends import check_available
    from saedetox.eval.sampler.sampling import SamplingConfig, sample
    from saedetox.io import atomic_write_text, check_output_file, ensure_unlocked, exists, folder_lock
    from saedetox.methods.contrast import default_contrast
    from saedetox.methods.registry import build_method
    from saedetox.model.chat import check_chat
    from saedetox.progress import note
    from saedetox.steering.steerer import Steerer

    texts = list(prompt or [])
    if prompts_file:
        texts += read_prompt_texts(prompts_file, field)
    if not texts:
        raise SaedetoxError("Give at least one --prompt or a --prompts file.")
    if any(not t.strip() for t in texts):
        raise SaedetoxError("Empty prompt: every prompt must contain some text.")
    contexts = (
        texts if attack is None else attack_contexts(attack, texts, prompt_uids([Prompt(t) for t in texts]), data_dir)
    )
    info, own, spec, options = (
        method_setup(method, steering, data_dir, train_judge)
        if method is not None
        else (None, steering, build_spec(steering, required=False), {})
    )
    cfg = SamplingConfig(
        n_samples=n_samples,
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=temperature,
        do_sample=not greedy,
        seed=seed,
        prepend_bos=True,
        chat=chat,
    ).validate()  # before the model is loaded
    if seed < 0:
        raise SaedetoxError(f"seed must be a whole number ≥ 0, got {seed}.")
    check_available(backend)
    if out:
        check_output_file(out)  # before anything is generated
        ensure_unlocked(out, "generate")
        if exists(out) and not overwrite:
            raise SaedetoxError(f"{out} exists; pass --overwrite to replace it, or choose another --out.")
    lm = load_lm(model, dtype, device)
    if chat:
        check_chat(lm.tokenizer, lm.name)
    if spec:
        note("loading the SAE and resolving the steering")
    if info is not None:
        if "contrast" in info.needs:
            options["data"] = default_contrast(data_dir)
        built = build_method(lm, info.name, spec, **options)
        check_method_features(built, own)
    else:
        steerer = Steerer(lm, spec) if spec else None
        if steerer is not None:
            check_method_features(steerer, steering)
    with folder_lock(out, "generate") if out else nullcontext():
        note(f"generating {n_samples} sample(s) for {len(texts)} prompt(s)")
        if info is not None:
            results = sample_method(lm, built, contexts, cfg, backend)
        else:
            results = sample(lm, contexts, cfg, steerer, backend=backend)
        rows = [
            {
                "prompt": texts[i],
                **({"attack": attack, "attacked_prompt": contexts[i]} if attack else {}),
                "sample": s.sample_index,
                "continuation": s.text,
            }
            for i, group in enumerate(results)
            for s in group
        ]
        if out:
            atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
            typer.echo(f"wrote {len(rows)} samples to {out}", err=True)
            return
    for r in rows:
        typer.echo(f"{r['prompt']}\u2502{r['continuation']}")
