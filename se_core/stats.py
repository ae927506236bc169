"""``python -m se_core.stats``: the command line of :mod:`se_core.analysis.stats.cli`."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.analysis.stats.cli")
