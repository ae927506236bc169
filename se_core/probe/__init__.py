"""Layer 2: probe sites and the hooks that read or change them (imports :mod:`se_core.nn` and below)."""
