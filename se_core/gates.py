"""``python -m se_core.gates``: the command line of :mod:`se_core.analysis.gates.cli`."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.analysis.gates.cli")
