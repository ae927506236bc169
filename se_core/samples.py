"""``python -m se_core.samples``: the command line of :mod:`se_core.data.samples`."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.data.samples")
