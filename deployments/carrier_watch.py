"""The carrier watcher of a host (``flows.carrier_watch``): a node stopped outside any flow
takes its peers' carrier, and gives it back when it starts.

    python -m deployments.carrier_watch [--pidfile PATH]   (make setup; scripts/sim-fleet.sh per host)
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path


def main() -> None:
    from flows.carrier_watch import watch_forever

    parser = argparse.ArgumentParser(prog="python -m deployments.carrier_watch")
    parser.add_argument("--pidfile", type=Path, help="write this process's id there")
    args = parser.parse_args()
    if args.pidfile:
        args.pidfile.parent.mkdir(parents=True, exist_ok=True)
        args.pidfile.write_text(f"{os.getpid()}\n")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per server call otherwise
    watch_forever()


if __name__ == "__main__":
    main()
