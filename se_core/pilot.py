"""``python -m se_core.pilot``: the command line of :mod:`se_core.runs.pilot`."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.runs.pilot")
