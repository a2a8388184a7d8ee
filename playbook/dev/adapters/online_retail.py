"""Moved to ``playbook.adapters.online_retail`` (``playbook adapt online-retail SOURCE OUT``); this name still runs it."""
from __future__ import annotations

import sys

from playbook.adapters.online_retail import *  # noqa: F401,F403 (the module's names, for earlier imports)
from playbook.adapters.online_retail import main

if __name__ == "__main__":
    sys.exit(main())
