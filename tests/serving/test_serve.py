"""``saedetox serve`` on 127.0.0.1 with the official ``openai`` client (runs where vLLM is installed:
``make test`` runs it in ``.venv-vllm``). One server for the module; every request stays on loopback.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import torch

from serving_levels import LATENTS, PROMPTS

pytest.importorskip("vllm", reason="vLLM is not installed here (make test runs this in .venv-vllm)")
openai = pytest.importorskip("openai")

from saedetox.model.load import load_model  # noqa: E402
from saedetox.steering.steer import steering_spec  # noqa: E402
from saedetox.steering.steerer import Steerer  # noqa: E402

NEW = 8
LEVELS = {"off": None, "low": "low", "high": "high"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hf(lm, tier, ids):
    x = torch.tensor([ids])
    kw = dict(do_sample=False, max_new_tokens=NEW, attention_mask=torch.ones_like(x), eos_token_id=None, pad_token_id=0)
    if tier is None:
        return lm.model.generate(x, **kw)[0, x.shape[1] :].tolist()
    spec = steering_spec(LATENTS, sae="reference", mode="conditional", tier=tier, threshold=0.5)
    with Steerer(lm, spec):
        return lm.model.generate(x, **kw)[0, x.shape[1] :].tolist()


@pytest.fixture(scope="module")
def server():
    lm = load_model("reference", dtype="float32")
    bos = lm.tokenizer.bos_token_id
    prompts = [[bos] + lm.tokenizer(p).input_ids for p in PROMPTS]
    solo = {(i, lv): _hf(lm, tier, p) for i, p in enumerate(prompts) for lv, tier in LEVELS.items()}
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "saedetox.cli",
        "serve",
        "--sae",
        "reference",
        "--features",
        ",".join(map(str, LATENTS)),
        "--mode",
        "conditional",
        "--threshold",
        "0.5",
        "--levels",
        "off,low,high",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--vllm-arg=--max-model-len=256",
        "--vllm-arg=--gpu-memory-utilization=0.1",
    ]
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(base + "/health", timeout=2)
            break
        except OSError:
            time.sleep(2)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=120)
    yield proc, base, client, prompts, solo
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def _complete(client, ids, level, stream=False):
    return client.completions.create(
        model="reference",
        prompt=ids,
        max_tokens=NEW,
        temperature=0,
        stream=stream,
        extra_body={"vllm_xargs": {"saedetox_level": level}, "ignore_eos": True, "return_token_ids": True},
    )


def _ids(resp) -> list[int]:
    return list(resp.choices[0].token_ids)


def _state(base: str) -> int:
    req = urllib.request.Request(
        base + "/collective_rpc",
        data=json.dumps({"method": "saedetox_state_size"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return sum(int(x) for x in json.loads(urllib.request.urlopen(req, timeout=30).read())["results"])


def test_each_level_answers_the_openai_client_as_hf(server):
    proc, base, client, prompts, solo = server
    assert any(solo[(i, "high")] != solo[(i, "off")] for i in range(len(prompts)))
    for i, p in enumerate(prompts):
        for lv in LEVELS:
            assert _ids(_complete(client, p, lv)) == solo[(i, lv)], (i, lv)


def test_a_text_prompt_gets_bos_as_saedetox_gives_it(server):
    """The served tokenizer adds BOS where saedetox's sampler prepends it: text = ids with BOS."""
    proc, base, client, prompts, solo = server
    for lv in ("off", "high"):
        assert _ids(_complete(client, PROMPTS[2], lv)) == solo[(2, lv)], lv


def test_unknown_level_is_http_400(server):
    proc, base, client, prompts, solo = server
    with pytest.raises(openai.BadRequestError, match="Unknown steering level 'extreme'"):
        _complete(client, prompts[0], "extreme")


def test_bounded_load_mixed_levels_streaming_and_cancelled(server):
    """32 concurrent clients for at most 40 s: every finished completion equals its solo output."""
    proc, base, client, prompts, solo = server
    failures, finished, cancelled = [], [0], [0]
    stop = time.time() + 40
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(4):
            if time.time() > stop:
                return
            i, lv = rng.randrange(len(prompts)), rng.choice(list(LEVELS))
            try:
                if rng.random() < 0.5:
                    stream = _complete(client, prompts[i], lv, stream=True)
                    got: list[int] = []
                    cancel = rng.random() < 0.3
                    for chunk in stream:
                        got += list(chunk.choices[0].token_ids or [])
                        if cancel and len(got) >= 2:
                            stream.close()
                            break
                    with lock:
                        if cancel:
                            cancelled[0] += 1
                        else:
                            finished[0] += 1
                            if got != solo[(i, lv)]:
                                failures.append(("stream", i, lv, got, solo[(i, lv)]))
                else:
                    got = _ids(_complete(client, prompts[i], lv))
                    with lock:
                        finished[0] += 1
                        if got != solo[(i, lv)]:
                            failures.append(("plain", i, lv, got, solo[(i, lv)]))
            except Exception as e:  # any failed request fails the test
                with lock:
                    failures.append(("error", i, lv, repr(e)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures[:5]
    assert finished[0] >= 32
    time.sleep(1)
    _complete(client, prompts[0], "off")  # one more step lets vLLM free the last finished requests
    assert _state(base) == 0


def test_ctrl_c_shuts_down_cleanly(server):
    proc = server[0]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=180) == 0
