"""The model card of the Models page's Selected pair tab: what a loaded checkpoint is and where it came from."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from se_core.models.build import se_label
from se_core.models.weights import LoadedModel


def fields(m: LoadedModel) -> dict[str, str]:
    """What the card's table shows of a loaded model: architecture, SE config, size, classes, input, normalization."""
    meta = m.meta
    return {"architecture": meta.arch, "SE config": se_label(m.model, meta), "parameters": f"{sum(p.numel() for p in m.model.parameters()):,}",
            "classes": f"{meta.num_classes}: {', '.join(meta.class_names[:12])}"
                       + (f", … ({meta.num_classes - 12} more)" if len(meta.class_names) > 12 else ""),
            "input size": f"{meta.input_size[0]}×{meta.input_size[1]} px",
            "normalization mean": ", ".join(f"{v:.4f}" for v in meta.mean),
            "normalization std": ", ".join(f"{v:.4f}" for v in meta.std)}


def card(m: LoadedModel, role: str) -> None:
    """A model's card: its file, :func:`fields`, its provenance and any extra metadata."""
    st.markdown(f"#### {role}: `{m.meta.arch}`")
    st.markdown(f"File `{m.source}`")
    st.table(pd.DataFrame(fields(m).items(), columns=["field", "value"]).set_index("field"))
    st.markdown("**Provenance** (from the checkpoint's metadata)")
    if m.meta.provenance:
        st.table(pd.DataFrame([(k, v if isinstance(v, str) else json.dumps(v)) for k, v in m.meta.provenance.items()],
                              columns=["field", "value"]).set_index("field"))
    else:
        st.warning("This checkpoint carries no provenance: where its weights came from is unknown.")
    if m.meta.extra:
        with st.expander("Extra metadata (e.g. the training config)"):
            st.json(m.meta.extra, expanded=False)
