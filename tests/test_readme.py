"""The README opens with exactly the two set-up commands, and CI runs the README's test command."""
from __future__ import annotations

import re

from support import REPO_ROOT


def _opening_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", head, re.S)]


def test_readme_opens_with_two_commands() -> None:
    cmds = _opening_commands()
    assert len(cmds) == 2, cmds
    assert cmds[0].startswith("pip install -r requirements.txt") and "streamlit run dashboard/app.py" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert _opening_commands()[1] in ci


def test_requirements_pin_torch() -> None:
    req = (REPO_ROOT / "requirements.txt").read_text()
    assert "torch==2.14.1" in req and "torchvision==0.29.1" in req
