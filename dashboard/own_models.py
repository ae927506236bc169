"""The Models page's second section: ImageNet pairs from timm / torchvision, and the user's own checkpoint.

It only reads the sidebar state and can switch it (to a library pair, or to the user pair it
registers). Uploaded checkpoints are stored by SHA-256 and inspected without executing anything
(:mod:`se_core.models.user_models`); loading them goes through :func:`dashboard.caching.user_model`.
"""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import caching, state, weights_download
from se_core.analysis.inspect import check_pair
from se_core.config import downloads_allowed
from se_core.models import zoo
from se_core.models.checkpoints import CheckpointError
from se_core.models.pairs import PAIRS
from se_core.models.registry import get_spec, list_models
from se_core.models.user_models import (
    ModelRecipe,
    UserPairRecipe,
    VanillaChoice,
    inspect_file,
    register_user_pair,
    store_bytes,
    vanilla_choices,
)
from se_core.nn.se import GATES, INTEGRATIONS, SITES, SQUEEZES, SEConfig

OTHER_ARCH = "another timm / torchvision model…"
REGISTERED_KEY = "models-user-registered"
VANILLA_KEY = "models-user-vanilla-choice"
VANILLA_FOR = "models-user-vanilla-for"
GUESS_FOR = "models-user-guess-for"


@st.cache_data(max_entries=16, show_spinner="Reading the checkpoint...")
def _file_report(sha: str, name: str, _stored) -> tuple[bool, dict | None, int, int, str | None, str | None]:
    rep = inspect_file(_stored)
    meta = None if rep.meta is None else {"arch": rep.meta.arch, "se_config": rep.meta.se_config,
                                          "num_classes": rep.meta.num_classes, "classes": len(rep.meta.class_names)}
    return (rep.has_meta, meta, rep.n_tensors, rep.n_values, rep.suggested_se.to_json() if rep.suggested_se else None,
            rep.guessed_arch)


def _preselect_guess(role: str, sha: str, guess: str | None, archs: list[str]) -> None:
    """Put the guessed architecture into the widgets once per uploaded file (the user may still change it)."""
    if st.session_state.get(f"{GUESS_FOR}-{role}") == sha:
        return
    st.session_state[f"{GUESS_FOR}-{role}"] = sha
    if guess in archs:
        st.session_state[f"models-user-{role}-arch"] = guess
    elif guess:
        st.session_state[f"models-user-{role}-arch"] = OTHER_ARCH
        st.session_state[f"models-user-{role}-libarch"] = guess


def _se_fields(role: str, suggested: str | None) -> str | None:
    """SE config widgets (for architectures built with this project's SE unit); the config as JSON."""
    base = SEConfig.from_json(suggested) if suggested else SEConfig()
    c = st.columns(7)
    r = c[0].number_input("reduction r", 1, 1024, base.reduction, key=f"models-user-{role}-r",
                          help="Guessed from the file's fc1 shapes when it has this project's SE units.")
    floor = c[1].number_input("min hidden", 1, 4096, base.min_hidden, key=f"models-user-{role}-floor",
                              help="Floor on the SE bottleneck width (timm's convention: 8); guessed from the shapes.")
    sq = c[2].selectbox("squeeze", SQUEEZES, index=SQUEEZES.index(base.squeeze), key=f"models-user-{role}-sq")
    gate = c[3].selectbox("gate", GATES, index=GATES.index(base.gate), key=f"models-user-{role}-gate")
    stages = c[4].text_input("stages", "" if base.stages is None else ",".join(map(str, base.stages)),
                             key=f"models-user-{role}-stages", help="1-based stage numbers, comma-separated; empty: all")
    integ = c[5].selectbox("integration", INTEGRATIONS, key=f"models-user-{role}-integ")
    site = c[6].selectbox("site", SITES, key=f"models-user-{role}-site")
    try:
        st_tuple = tuple(int(x) for x in stages.replace(" ", "").split(",") if x) or None
        return SEConfig(reduction=int(r), min_hidden=int(floor), squeeze=sq, gate=gate, stages=st_tuple,
                        integration=integ, site=site).to_json()
    except ValueError as e:
        st.error(f"This SE configuration is not valid: {e}. Correct the fields above.")
        return None


def _model_settings(role: str, label: str, require_se: bool) -> tuple[ModelRecipe, str] | None:
    """Uploader plus, when the file lacks metadata, architecture / SE config / class names; the recipe."""
    up = st.file_uploader(label, type=["safetensors", "pt", "pth"], key=f"models-user-{role}-upload",
                          help=".safetensors, or a .pt/.pth state dict (read with torch.load(weights_only=True); "
                               "pickled code is refused). Stored by its SHA-256 under the user cache, never executed.")
    if up is None:
        return None
    try:
        stored = store_bytes(up.name, up.getvalue())
        has_meta, meta, n_tensors, n_values, suggested, guess = _file_report(stored.sha256, stored.name, stored)
    except CheckpointError as e:
        st.error(f"{e}. Upload a checkpoint saved with se_core.models.checkpoints.save_checkpoint, safetensors.torch.save_file "
                 "or torch.save(model.state_dict()).")
        return None
    st.caption(f"`{stored.name}`: {n_tensors} tensors, {n_values:,} values, sha256 `{stored.sha256[:16]}…`.")
    if has_meta:
        st.markdown(f"From the file's metadata: architecture **{meta['arch']}**, SE config "
                    f"`{json.dumps(meta['se_config']) if meta['se_config'] else 'none'}`, "
                    f"{meta['num_classes']} classes ({meta['classes']} names).")
        return ModelRecipe("upload", meta["arch"], file=stored.path.name, label=stored.name), stored.name
    archs = list_models()
    archs = sorted(archs, key=lambda a: (get_spec(a).has_se != require_se, a)) + [OTHER_ARCH]
    _preselect_guess(role, stored.sha256, guess, archs)
    if guess:
        st.info(f"This file has no SE Lens metadata. Architecture **{guess}**: guessed from the file's keys (every "
                "key and shape matches it); change it below if that is wrong.", icon=":material/info:")
    else:
        st.info("This file has no SE Lens metadata and its keys match no known architecture: say what it is.",
                icon=":material/info:")
    c1, c2 = st.columns([2, 3])
    arch = c1.selectbox("Architecture", archs, key=f"models-user-{role}-arch",
                        help="The registered architecture the weights belong to; shapes are checked key by key.")
    if arch == OTHER_ARCH:
        arch = c2.text_input("Library model", "", key=f"models-user-{role}-libarch", placeholder="timm:seresnet18",
                             help="Any timm or torchvision classifier: timm:<name> or torchvision:<name>.").strip()
        if not arch:
            return None
    se_json = None
    try:
        spec = get_spec(arch)
    except KeyError as e:
        st.error(f"{e.args[0] if e.args else e}. Type a name from timm.list_models() or "
                 "torchvision.models.list_models(), with its timm: / torchvision: prefix.")
        return None
    if spec.takes_se and role == "se":
        st.markdown("SE configuration of the file's model (not stored in the file):")
        se_json = _se_fields(role, suggested)
        if se_json is None:
            return None
    names = st.text_area("Class names (optional)", "", key=f"models-user-{role}-classes", height=90,
                         help="One per line or comma-separated, in output order. Empty: the architecture's own "
                              "(the library's ImageNet names, CIFAR-10's, or class numbers).")
    parts = [x.strip() for x in (names.splitlines() if "\n" in names.strip() else names.split(","))]
    class_names = tuple(x for x in parts if x)
    return ModelRecipe("upload", arch, file=stored.path.name, se=json.loads(se_json) if se_json else None,
                       class_names=class_names, label=stored.name), stored.name


def library_pairs(pair_name: str) -> None:
    """The ImageNet pairs tab: where each library's weights are, and a button to show a ready pair."""
    how = ("A pair's **Download** button fetches its missing files into those caches; nothing downloads without "
           "that click." if downloads_allowed() else "Downloads are switched off on this server "
           "(`SE_LENS_ALLOW_DOWNLOAD=0`): copy the files in as described below.")
    st.markdown("SE networks from **timm** and **torchvision** next to the closest vanilla network, with the weights "
                "those libraries publish. They are read from the libraries' own caches on this machine (Hugging Face "
                f"hub cache, torch hub checkpoints) or from `data/weights/`. {how}")
    try:
        avail = pd.DataFrame(caching.library_weights())
    except Exception as e:  # noqa: BLE001 - a broken library install must not take the page down
        st.error(f"The library weights cannot be checked ({type(e).__name__}: {e}); check that timm and torchvision "
                 "are installed.")
        avail = pd.DataFrame()
    if not avail.empty:
        st.dataframe(avail[["pair", "role", "model", "weights", "available", "file"]], hide_index=True,
                     width="stretch", key="models-zoo-table",
                     column_config={"available": st.column_config.CheckboxColumn("on disk"),
                                    "file": st.column_config.TextColumn("file (found, or where it is expected)")})
        for zp in zoo.ZOO_PAIRS:
            rows = avail[avail["pair"] == zp.name]
            ready = bool(len(rows)) and bool(rows["available"].all())
            note = weights_download.take_note(zp.name)
            with st.expander(f"{PAIRS[zp.name].title}: {'ready' if ready else 'weights missing'}", expanded=bool(note)):
                st.markdown(zp.note)
                for r in rows.itertuples():
                    if r.available:
                        st.markdown(f"**{r.role}** `{r.model}` ({r.weights}): `{r.file}`")
                    else:
                        st.markdown(f"**{r.role}** `{r.model}` ({r.weights}): **missing**. {r.message}")
                        st.code(r.command, language="bash")
                    if r.recipe:
                        st.caption(f"Training recipe / origin: {r.recipe}")
                weights_download.pair_download(zp.name, ready, note)
                if ready and st.button("Show this pair", key=f"models-zoo-show-{zp.name}",
                                       disabled=pair_name == zp.name):
                    state.select_pair(zp.name)
                    st.rerun()


def _use_choice(index: int) -> None:
    st.session_state[VANILLA_KEY] = index


def _missing_weights(choices: list[VanillaChoice], ch: VanillaChoice) -> str:
    """Say why the check cannot run with ``ch`` (weights not on disk), how to get them, and offer the
    untrained twin; the reason shown on the disabled button."""
    reason = f"The weights of {ch.recipe.arch} are not on this machine (expected at {ch.detail})."
    if ch.pair and downloads_allowed():
        how = (f"The **ImageNet pairs** tab has a **Download** button for pair **{PAIRS[ch.pair].title}**, which "
               "fetches them; then come back here.")
    elif ch.pair:
        how = f"They are the weights of pair **{PAIRS[ch.pair].title}**; see the ImageNet pairs tab for how to copy them in."
    else:
        how = "Get them on a machine with internet access and copy them into the library's cache" + (
            f":\n\n```bash\n{ch.command}\n```" if ch.command else ".")
    st.warning(f"{reason} The check needs them. {how}", icon=":material/download:")
    twin = next((i for i, c in enumerate(choices) if c.recipe.source == "random" and c.recipe.arch == ch.recipe.arch),
                None)
    if twin is not None:
        st.button(f"Use {ch.recipe.arch} untrained instead (random initialisation, a stand-in)",
                  key="models-user-use-twin", on_click=_use_choice, args=(twin,))
    return reason + " Get them first (see above), or pick another counterpart."


def own_checkpoint() -> None:
    """The Your checkpoint tab: upload, describe, check and register a user pair (then select it)."""
    done = st.session_state.pop(REGISTERED_KEY, None)
    if done:
        name, warnings = done
        st.success(f"Registered **{PAIRS[name].title}** (`{name}`) and selected it in the sidebar; every page now "
                   "shows it. The link with `?pair=` reopens it.")
        for w in warnings:
            st.warning(f"Note: {w}.")
    st.markdown("Compare **your** SE model with a vanilla counterpart on every page. Upload its checkpoint (any "
                "registered architecture, or any timm / torchvision classifier); the architecture, SE configuration "
                "and class names come from the file's metadata, else you choose them below. Shapes are checked key by "
                "key before anything runs.")
    se_choice = _model_settings("se", "SE model checkpoint", require_se=True)
    if se_choice is not None:
        se_recipe, se_label = se_choice
        choices = vanilla_choices(se_recipe.arch)
        labels = [c.label for c in choices] + ["Upload a second checkpoint (vanilla model)"]
        if st.session_state.get(VANILLA_FOR) != se_recipe.arch:  # a new SE model: its own natural default
            st.session_state[VANILLA_FOR] = se_recipe.arch
            st.session_state[VANILLA_KEY] = next((i for i, c in enumerate(choices) if c.available), 0)
        pick = st.selectbox("Vanilla counterpart", range(len(labels)), format_func=lambda i: labels[i],
                            key=VANILLA_KEY,
                            help="The natural counterpart first: the same library's model without SE (timm:seresnet18 → "
                                 "timm:resnet18) with its weights, then the vanilla model of a registered pair with the "
                                 "same SE architecture, the same family, models for the same classes and input size; "
                                 "networks for another data set last. Random initialisations are untrained stand-ins.")
        van_recipe: ModelRecipe | None = None
        missing: str | None = None
        if pick == len(choices):
            van = _model_settings("vanilla", "Vanilla model checkpoint", require_se=False)
            van_recipe = van[0] if van else None
        else:
            ch = choices[pick]
            st.caption(ch.detail)
            van_recipe = ch.recipe
            missing = None if ch.available else _missing_weights(choices, ch)
        if van_recipe is not None and st.button("Check and compare", key="models-user-register", type="primary",
                                                icon=":material/compare_arrows:", disabled=bool(missing),
                                                help=missing):
            se_lm, err = caching.user_model(se_recipe.file, se_recipe.arch, json.dumps(se_recipe.se, sort_keys=True)
                                            if se_recipe.se else None, se_recipe.class_names, se_label, True)
            if err:
                st.error(f"Your SE checkpoint cannot be used: {err}")
                return
            if van_recipe.source == "upload":
                van_lm, van_err = caching.user_model(van_recipe.file, van_recipe.arch, None, van_recipe.class_names,
                                                     van_recipe.label, False)
            else:
                van_lm, van_err = caching.recipe_model(van_recipe)
            if van_err:
                st.error(f"The vanilla counterpart cannot be used: {van_err}")
                return
            check = check_pair(se_lm, van_lm)
            if check.refusals:
                st.error("These two models cannot be compared: " + "; ".join(check.refusals) + ".")
                return
            name = register_user_pair(UserPairRecipe(se_recipe, van_recipe))
            state.add_user_pair(name)
            st.session_state[REGISTERED_KEY] = (name, check.warnings)
            st.rerun()
