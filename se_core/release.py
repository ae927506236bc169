"""``python -m se_core.release``: the command line of :mod:`se_core.runs.release`."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.runs.release")
