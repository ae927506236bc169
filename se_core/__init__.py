"""SE Lens library: SE networks, probes, data, training, statistics, attribution, result tables.

Never imports streamlit: the dashboard depends on this package, not the other way round.
"""
from se_core.nn.se import SEConfig, SqueezeExcite, create_se

__version__ = "0.1.0"
__all__ = ["SEConfig", "SqueezeExcite", "create_se", "__version__"]
