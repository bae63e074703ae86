"""The hub mirror's SAE layouts are the ones the installed sae_lens reads (a drift fails here), and a file
missing from the local cache fails with the loader's own complaint, which saedetox turns into one line."""

from __future__ import annotations

import warnings

import pytest
from huggingface_hub.errors import LocalEntryNotFoundError
from sae_lens import SAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME, SPARSITY_FILENAME
from sae_lens.loading import pretrained_sae_loaders as loaders
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory, get_repo_id_and_folder_name

import hub_mirror as hm
from saedetox.errors import SaedetoxError
from saedetox.sae.load import centring_requested, load_sae, wants_centring

# per conversion loader: the files it reads from an SAE's folder, and whether each is required
LOADER_FILES = {
    "sae_lens": {SAE_CFG_FILENAME: True, SAE_WEIGHTS_FILENAME: True, SPARSITY_FILENAME: False},
    "gemma_2": {"params.npz": True},
}
GPT2_WIDTH = hm.SMALL_OVERRIDES["gpt2"]["n_embd"]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """A private mirror holding only the SAE repos: files are removed here, never in the shared one."""
    return hm.build_mirror(tmp_path_factory.mktemp("mini"), models=(), saes=hm.paper_saes(gemma_widths=("16k",)))


def _split(name: str) -> tuple[str, str]:
    release, _, sae_id = name.partition("/")
    return release, sae_id


def test_the_mirror_holds_every_sae_the_paper_configs_name(mirror):
    wanted = hm.paper_saes(gemma_widths=("16k",))
    assert set(mirror.saes) == set(wanted)
    assert any(n.startswith(hm.FS) for n in wanted) and any(n.startswith(hm.GEMMA_SCOPE) for n in wanted)


def test_registry_maps_each_id_to_the_folder_and_loader_the_mirror_writes(mirror):
    reg = get_pretrained_saes_directory()
    for name in mirror.saes:
        release, sae_id = _split(name)
        repo, folder, files = hm.sae_location(name)
        assert get_repo_id_and_folder_name(release, sae_id) == (repo, folder), name
        loader = loaders.get_conversion_loader_name(release)
        assert set(files) == set(LOADER_FILES[loader]), (name, loader)
        assert reg[release].repo_id == repo
        for f in files:
            assert mirror.file(repo, f"{folder}/{f}").exists(), (name, f)


def test_every_paper_sae_id_maps_as_the_installed_registry_says_also_the_ones_not_built_in_ci():
    """All ids of both configs (Gemma Scope 32k-262k included): folder, repo and, for Gemma Scope, the shapes
    sae_lens' own config getter derives from the id (the npz must have exactly these)."""
    for name in hm.paper_saes():
        release, sae_id = _split(name)
        repo, folder, _ = hm.sae_location(name)
        assert get_repo_id_and_folder_name(release, sae_id) == (repo, folder), name
        if release == hm.GEMMA_SCOPE:
            cfg = loaders.NAMED_PRETRAINED_SAE_CONFIG_GETTERS["gemma_2"](repo, folder, "cpu", False, None)
            width = hm.GEMMA_WIDTHS[hm.gemma_scope_width(sae_id)]
            assert (cfg["d_in"], cfg["d_sae"]) == (hm.GEMMA_2B_D_IN, width), name


def test_each_sae_loads_through_the_real_conversion_and_reads_exactly_the_mirrored_files(hub, monkeypatch):
    """sae_lens' own loaders (found through the registry) ask the hub client for the files; we record which."""
    asked: list[tuple[str, str]] = []
    real_download = loaders.hf_hub_download

    def recording(repo_id, filename, subfolder=None, **kw):
        asked.append((repo_id, f"{subfolder}/{filename}" if subfolder else filename))
        return real_download(repo_id=repo_id, filename=filename, subfolder=subfolder, **kw)

    monkeypatch.setattr(loaders, "hf_hub_download", recording)
    reg = get_pretrained_saes_directory()
    for name in hub.saes:
        release, sae_id = _split(name)
        repo, folder, files = hm.sae_location(name)
        asked.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sae, _, sparsity = SAE.from_pretrained_with_cfg_and_sparsity(release, sae_id)
        assert sorted(asked) == sorted((repo, f"{folder}/{f}") for f in files), name
        md = sae.cfg.metadata
        assert md.neuronpedia_id == reg[release].neuronpedia_id.get(sae_id)
        if release == hm.GEMMA_SCOPE:
            assert (sae.cfg.d_in, sae.cfg.d_sae) == (hm.GEMMA_2B_D_IN, hm.GEMMA_WIDTHS[hm.gemma_scope_width(sae_id)])
            assert type(sae).__name__ == "JumpReLUSAE" and md.hook_name == "blocks.12.hook_resid_post"
            assert md.model_name == "gemma-2-2b" and md.prepend_bos and sparsity is None
        else:
            real = hm.RES_JB_D_SAE if release == hm.RES_JB else int(sae_id.rsplit("_", 1)[1])
            assert (sae.cfg.d_in, sae.cfg.d_sae) == (GPT2_WIDTH, real * GPT2_WIDTH // 768)
            assert md.hook_name == (sae_id if release == hm.RES_JB else "blocks.8.hook_resid_pre")
            assert md.model_from_pretrained_kwargs == {"center_writing_weights": True} and md.prepend_bos is True
            assert sparsity is not None and sparsity.shape == (sae.cfg.d_sae,)
        del sae


def test_res_jb_config_matches_what_sae_lens_own_test_expects(hub):
    """``load_sae_config_from_huggingface`` on the mirror = the dict SAELens' tests/loading asserts (dims aside)."""
    got = loaders.load_sae_config_from_huggingface(hm.RES_JB, "blocks.6.hook_resid_pre")
    assert got == {
        "d_in": GPT2_WIDTH,
        "device": "cpu",
        "dtype": "torch.float32",
        "d_sae": hm.RES_JB_D_SAE * GPT2_WIDTH // 768,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "model_name": "gpt2-small",
            "hook_name": "blocks.6.hook_resid_pre",
            "hook_head_index": None,
            "context_size": 128,
            "model_from_pretrained_kwargs": {"center_writing_weights": True},
            "neuronpedia_id": "gpt2-small/6-res-jb",
            "prepend_bos": True,
            "dataset_path": "Skylion007/openwebtext",
            "sae_lens_training_version": None,
        },
        "architecture": "standard",
    }


@pytest.mark.parametrize("release", [hm.RES_JB, hm.FS, hm.GEMMA_SCOPE])
def test_a_file_missing_from_the_cache_fails_with_the_loaders_complaint(mini, release):
    name = next(n for n in mini.saes if _split(n)[0] == release)
    repo, folder, files = hm.sae_location(name)
    required = LOADER_FILES[loaders.get_conversion_loader_name(release)]
    with mini.active():
        for f in files:
            with mini.hidden(repo, f"{folder}/{f}"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if not required[f]:  # optional: the load goes on without it
                    assert SAE.from_pretrained_with_cfg_and_sparsity(*_split(name))[2] is None
                    continue
                with pytest.raises(LocalEntryNotFoundError):
                    SAE.from_pretrained(*_split(name))
                with pytest.raises(SaedetoxError) as err:
                    load_sae(name, model_uses_layernorm=True)
            msg = str(err.value)
            assert "\n" not in msg and f"{folder}/{f} of the hub repo {repo}" in msg, msg
            assert "missing from the local Hugging Face cache" in msg and str(mini.cache_dir) in msg
            assert "LocalEntryNotFoundError" in msg and "set HF_HUB_OFFLINE" not in msg  # it is set already


def test_conventions_on_the_paper_saes(hub):
    """GPT-2 SAEs are centred (registry override + LayerNorm model); Gemma Scope on RMSNorm Gemma is not."""
    for name in hub.saes:
        md = loaders.load_sae_config_from_huggingface(*_split(name))["metadata"]
        if name.startswith(hm.GEMMA_SCOPE):
            # no kwargs, no model class: "requested", but never applied to an RMSNorm model
            assert centring_requested(md) is True and wants_centring(md, False) is False
            continue
        assert wants_centring(md, True) is True
        sae = load_sae(name, model_uses_layernorm=True)
        assert sae.center and sae.prepend_bos and sae.neuronpedia_id == md["neuronpedia_id"]
