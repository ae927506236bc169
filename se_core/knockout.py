"""``python -m se_core.knockout``: the command line of :mod:`se_core.analysis.knockout`."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.analysis.knockout")
