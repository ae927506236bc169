"""``python -m se_core.zoo``: the command line of :mod:`se_core.models.zoo.cli` (``list``, ``download PAIR``)."""
from se_core._cli import run

if __name__ == "__main__":
    run("se_core.models.zoo.cli")
