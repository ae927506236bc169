"""Layer 4: what the dashboard shows, computed: evaluation, statistics, selectivity, knock-out,
attribution, inspection (imports :mod:`se_core.models` and below)."""
