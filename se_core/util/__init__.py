"""Layer 0, beside :mod:`se_core.config`: file, path and provenance helpers that know nothing of models."""
