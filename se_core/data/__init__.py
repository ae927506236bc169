"""Layer 2: data sets, image decoding and named samples (imports :mod:`se_core.util` and :mod:`se_core.config`)."""
