# -*- coding: utf-8 -*-
# Private to restorable.backup: `python3 -m <package>.agent run --config FILE` from a checkout.
# On hosts the standalone copy runs as `python3 -m restorable_agent` (see standalone.py).
from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
