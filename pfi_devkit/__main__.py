"""``python -m pfi_devkit up|down|status [--state DIR]``: the demo's local partner servers.

Run it from the clone's root: the devkit sits beside the product (``pfi_devkit/``), it is not
installed with it. ``make run`` and ``make stop`` call it; by hand::

    .venv/bin/python -m pfi_devkit status      # what runs where: mailboxes, DPI peer, DMP endpoint

- ``up`` starts the servers in one detached process unless they already run, and prints
  ``stack.json`` (what runs where); idempotent.
- ``down`` stops them (and the private PostgreSQL cluster, if the demo had to create one).
- ``status`` prints ``stack.json`` (exit 0), or ``devkit not running`` (exit 1).
- ``serve`` runs them in the foreground until SIGTERM: what ``up`` starts detached, and what the
  docker-compose demo service runs (``--host 0.0.0.0 --fixed-ports``).

The state folder defaults to ``$PFI_DEVKIT_STATE``, else ``var/devkit``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pfi_devkit", description="local partner servers (demo, tests)"
    )
    parser.add_argument("action", choices=("up", "down", "status", "serve"))
    parser.add_argument("--state", default=os.environ.get("PFI_DEVKIT_STATE", "var/devkit"))
    parser.add_argument("--host", default="127.0.0.1", help="serve: MLLP and DMP listen here")
    parser.add_argument(
        "--fixed-ports", action="store_true", help="serve: MLLP on 2575, DMP on 8443"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pfi_devkit import stack

    args = build_parser().parse_args(argv)
    state = Path(args.state)
    if args.action == "serve":
        return stack.serve(state, host=args.host, fixed_ports=args.fixed_ports)
    if args.action == "up":
        info = stack.up(state)
        print(json.dumps(info, indent=2))
    elif args.action == "down":
        stack.down(state)
        print("devkit stopped")
    else:
        info = stack.status(state)
        print(json.dumps(info, indent=2) if info else "devkit not running")
        return 0 if info else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
