"""``python -m se_core.zoo``: list the ImageNet pairs with their weights' status, or download a pair's files."""
from __future__ import annotations

import argparse
import sys

from se_core.models.zoo.catalog import ZOO_PAIRS
from se_core.models.zoo.download import DownloadError, fetch, plan_pair, size_text, total_size
from se_core.models.zoo.load import availability


class _Bar:
    """A one-line progress display on stderr, redrawn at most every percent."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, done: int, total: int | None) -> None:
        pct = int(100 * done / total) if total else -1
        if total and pct == self.last:
            return
        self.last = pct
        text = f"{pct:3d} % of {size_text(total)}" if total else f"{size_text(done)} so far"
        print(f"\r  {text}", end="", file=sys.stderr, flush=True)


def download(name: str) -> int:
    """Fetch ``name``'s missing files, printing sizes, progress and the final paths; 0, or 2 on failure."""
    try:
        plans = plan_pair(name)
        if not plans:
            print(f"{name}: every file is already on this machine")
            return 0
        print(f"{name}: {len(plans)} file(s) to download, {size_text(total_size(plans))}")
        for p in plans:
            print(f"{p.label}: {size_text(p.size)} from {p.url}")
            path = fetch(p, _Bar())
            print(f"\n  ready (read and loaded): {path}")
    except DownloadError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nerror: download stopped; nothing half-written was kept", file=sys.stderr)
        return 2
    return 0


def show_list() -> int:
    """One line per pair and role: ready, or missing and where the file is expected."""
    for r in availability():
        print(f"{r['pair']:<30s} {r['role']:<8s} {'ready  ' if r['available'] else 'missing'} {r['weights']}: {r['file']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m se_core.zoo", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the ImageNet pairs and whether their weights are on this machine")
    d = sub.add_parser("download", help="download a pair's missing weight files into the libraries' caches")
    d.add_argument("pair", choices=[p.name for p in ZOO_PAIRS], metavar="PAIR",
                   help="one of: " + ", ".join(p.name for p in ZOO_PAIRS))
    args = ap.parse_args(argv)
    return show_list() if args.cmd == "list" else download(args.pair)


if __name__ == "__main__":
    sys.exit(main())
