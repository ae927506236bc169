"""Layer 5: training, releases, ablation sweeps, result tables and the pilot (imports everything below)."""
