"""Every figure of SE Lens: one module per page, :mod:`.common` for chart types pages share, :mod:`.style`
for the palette and the one way figures are built. Plain data in, plotly figure out; no Streamlit here."""
