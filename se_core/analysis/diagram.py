"""Graphviz (DOT) diagrams of an SE unit and of where it sits in a residual block (paper Fig. 5).

Pure functions: they take an :class:`~se_core.nn.se.SEConfig` (plus the unit's channel count) and
return DOT source, so the Home page can draw the *current* configuration and tests can check
the numbers in it. :func:`se_widths` reads the real channel/hidden widths off a built model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from se_core.nn.se import SEConfig
from se_core.probe.sites import find_sites

Block = Literal["basic", "bottleneck"]

_GATE_RANGE = {"sigmoid": "(0, 1)", "tanh": "(-1, 1)", "relu": "[0, inf)"}
_SQUEEZE_TEXT = {"avg": "global average pooling", "max": "global max pooling",
                 "none": "none (NoSqueeze): FCs act as 1×1 convs on the H×W map"}
_FIG5 = {"standard": "SE on the residual branch, before the sum (standard)",
         "pre": "SE at the start of the residual branch (SE-PRE)",
         "post": "SE after the sum and ReLU (SE-POST)",
         "identity": "SE on the identity branch, parallel to the residual (SE-Identity)"}

_STYLE = ('  graph [fontname="Helvetica", fontsize=12, labelloc=t, bgcolor="transparent"];\n'
          '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, '
          'fillcolor="#f4f6f8", color="#5b6770", fontcolor="#1d2329"];\n'
          '  edge [color="#5b6770", fontname="Helvetica", fontsize=10, fontcolor="#37424a"];\n')
_SE_FILL = "#fde2c8"
_SE_LINE = "#d9480f"


def _q(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def se_block_dot(config: SEConfig, channels: int, *, title: str | None = None) -> str:
    """DOT of one SE unit with its real widths: X -> squeeze -> FC(C->h) -> ReLU -> FC(h->C) -> gate -> scale.

    ``h = config.hidden(channels)``; the labels carry C, h, r, the squeeze op and the gate, so
    the drawing is the configuration actually in use.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    c, h, r = channels, config.hidden(channels), config.reduction
    pooled = config.squeeze != "none"
    zshape = f"z ∈ R^{c}" if pooled else f"z = X ({c}×H×W)"
    sshape = f"s ∈ {_GATE_RANGE[config.gate]}^{c}" if pooled else f"s: {c}×H×W in {_GATE_RANGE[config.gate]}"
    fc = "FC" if pooled else "1×1 conv"
    title = title or f"SE unit: C = {c}, r = {r}, hidden = {h}"
    lines = [
        "digraph se_block {", "  rankdir=TB;", "  nodesep=0.35;", "  ranksep=0.3;", _STYLE.rstrip("\n"), f"  label={_q(title)};",
        f"  x [label={_q(f'input X{chr(10)}{c}×H×W')}];",
        f"  squeeze [label={_q(f'Squeeze F_sq{chr(10)}{_SQUEEZE_TEXT[config.squeeze]}{chr(10)}{zshape}')}, "
        f"fillcolor=\"{_SE_FILL}\", color=\"{_SE_LINE}\"];",
        f"  fc1 [label={_q(f'{fc} W1: {c} → {h}{chr(10)}(reduction r = {r}, hidden = {h})')}, "
        f"fillcolor=\"{_SE_FILL}\", color=\"{_SE_LINE}\"];",
        f"  relu [label=\"ReLU δ\", fillcolor=\"{_SE_FILL}\", color=\"{_SE_LINE}\"];",
        f"  fc2 [label={_q(f'{fc} W2: {h} → {c}')}, fillcolor=\"{_SE_FILL}\", color=\"{_SE_LINE}\"];",
        f"  gate [label={_q(f'gate: {config.gate}{chr(10)}{sshape}')}, fillcolor=\"{_SE_FILL}\", color=\"{_SE_LINE}\"];",
        f"  scale [label={_q(f'Scale F_scale{chr(10)}X̃ = s · X (per channel)')}, shape=ellipse];",
        f"  out [label={_q(f'output X̃{chr(10)}{c}×H×W')}];",
        "  x -> squeeze;", "  squeeze -> fc1;", "  fc1 -> relu;", "  relu -> fc2;", "  fc2 -> gate;",
        "  gate -> scale [label=\" s\"];", "  x -> scale [style=dashed, label=\" X\"];", "  scale -> out;",
        "}",
    ]
    return "\n".join(lines) + "\n"


def integration_text(config: SEConfig) -> str:
    """One sentence saying where the SE units sit (Fig. 5 placement, site and stages)."""
    where = _FIG5[config.integration] + (", after the 3×3 convolution (Table 15)" if config.site == "3x3" else "")
    stages = "every stage" if config.stages is None else "stage(s) " + ", ".join(map(str, config.stages))
    return f"{where}; in {stages}."


def integration_dot(config: SEConfig, *, block: Block = "basic", title: str | None = None) -> str:
    """DOT of a residual block with the SE unit where ``config.integration``/``config.site`` put it.

    Mirrors :meth:`se_core.nn.resnet.SEBlockMixin._residual`: standard (before the sum),
    pre (start of the residual branch), post (after sum and ReLU), identity (on the shortcut),
    and the ``3x3`` site (after the 3×3 conv, Table 15).
    """
    if block == "basic":
        head, tail = "conv 3×3, BN, ReLU", "conv 3×3, BN"
    elif block == "bottleneck":
        head, tail = "conv 1×1, BN, ReLU\nconv 3×3, BN, ReLU", "conv 1×1, BN"
    else:
        raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
    name = {"standard": "standard", "pre": "SE-PRE", "post": "SE-POST", "identity": "SE-Identity"}[config.integration]
    title = title or f"Fig. 5: {name}" + (", 3×3 site" if config.site == "3x3" else "")
    se = f"  se [label=\"SE\", fillcolor=\"{_SE_FILL}\", color=\"{_SE_LINE}\", penwidth=2];"
    nodes = ["  x [label=\"x\", shape=circle];", f"  head [label={_q(head)}];", f"  tail [label={_q(tail)}];",
             "  sum [label=\"+\", shape=circle];", "  relu [label=\"ReLU\"];", "  out [label=\"out\", shape=circle];", se]
    integ = config.integration
    if integ == "pre":
        edges = ["x -> se", "se -> head", "head -> tail", "tail -> sum", "x -> sum [label=\" identity\"]", "sum -> relu",
                 "relu -> out"]
    elif integ == "post":
        edges = ["x -> head", "head -> tail", "tail -> sum", "x -> sum [label=\" identity\"]", "sum -> relu",
                 "relu -> se", "se -> out"]
    elif integ == "identity":
        edges = ["x -> head", "head -> tail", "tail -> sum", "x -> se [label=\" identity\"]", "se -> sum",
                 "sum -> relu", "relu -> out"]
    elif config.site == "3x3":
        edges = ["x -> head", "head -> se", "se -> tail", "tail -> sum", "x -> sum [label=\" identity\"]",
                 "sum -> relu", "relu -> out"]
    else:
        edges = ["x -> head", "head -> tail", "tail -> se", "se -> sum", "x -> sum [label=\" identity\"]",
                 "sum -> relu", "relu -> out"]
    return ("digraph se_integration {\n  rankdir=TB;\n  nodesep=0.35;\n  ranksep=0.3;\n" + _STYLE + f"  label={_q(title)};\n"
            + "\n".join(nodes) + "\n" + "\n".join(f"  {e};" for e in edges) + "\n}\n")


@dataclass(frozen=True)
class SEWidth:
    """One SE unit of a built model: module path, 1-based stage, channels C, hidden width h, parameter count."""

    site: str
    stage: int
    channels: int
    hidden: int
    params: int = 0


def se_widths(model: nn.Module) -> list[SEWidth]:
    """Real C, h and parameter count of every SE unit (read off its ``fc1``), in module order; [] for vanilla nets."""
    mods = dict(model.named_modules())
    out = []
    for st in find_sites(model):
        if not st.gate:
            continue
        unit = mods[st.name]
        fc1 = getattr(unit, "fc1", None) or getattr(unit, "conv_reduce", None) or getattr(unit, "reduce", None)
        c = getattr(fc1, "in_channels", None) or getattr(fc1, "in_features", None) or st.channels or 0
        h = getattr(fc1, "out_channels", None) or getattr(fc1, "out_features", None) or 0
        out.append(SEWidth(st.name, st.stage, int(c), int(h), sum(p.numel() for p in unit.parameters())))
    return out


__all__ = ["SEWidth", "integration_dot", "integration_text", "se_block_dot", "se_widths"]
