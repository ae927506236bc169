"""The Switch SE off section of the Inspect page: pick blocks, rerun the SE model with their gates at s = 1,
and show which predictions changed (cached in :mod:`dashboard.probing`)."""
from __future__ import annotations

import streamlit as st

from dashboard import display, probing
from dashboard.figures import inspector as figs
from se_core.analysis import inspect as ops
from se_core.data.images import ImageError
from se_core.models.weights import LoadedPair


def section(result: ops.InspectResult, pair: LoadedPair, digests: tuple[str, ...], names: tuple[str, ...],
            images: list, focus: int, pair_name: str) -> None:
    """The block picker, then the changed-predictions table and the focus image's chart."""
    st.markdown("**Switch SE off** (s = 1, the block passes its features unscaled) and see how the predictions change.")
    gate_by_label = {s_.label: s_.name for s_ in result.se.gate_sites}
    off_labels = st.multiselect("Blocks to switch off", list(gate_by_label), key=f"inspect_off_{pair_name}",
                                placeholder="Choose blocks (all images are rerun)")
    if not off_labels:
        return
    off = tuple(gate_by_label[lb] for lb in off_labels)
    try:
        iv = probing.intervene(probing.pair_key(pair), digests, names, off, pair, images, result.se)
    except (ImageError, ValueError, RuntimeError) as e:
        st.error(f"The intervention could not run ({e}); choose other blocks.")
        return
    table = iv.table()
    st.write(f"Top-1 changed for **{int(table['changed'].sum())} of {len(names)}** image(s) with SE off at "
             f"{', '.join(off_labels)}.")
    st.dataframe(table, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="percent") for c in ("p before", "p after", "p(top-1 before) after")})
    display.show(figs.intervention(iv, focus), key="inspect_intervention",
                 filename=display.dotless_stem(f"intervention_{names[focus]}"))
