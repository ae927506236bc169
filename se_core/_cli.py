"""The commands ``python -m se_core.<name>`` keep their short names while their code lives in the layers."""
from __future__ import annotations

import importlib
import sys


def run(module: str) -> None:
    """Run ``module``'s ``main()`` as the program and exit with its status."""
    sys.exit(importlib.import_module(module).main())
