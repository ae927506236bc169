"""``python -m se_core.checkpoints``: the command line of :mod:`se_core.models.build`."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.models.build")
