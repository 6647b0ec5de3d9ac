"""Shared by every test package: makes ``tests/helpers`` importable as ``helpers``.

``from helpers.live_server import live_server`` then works from any test module, with no
``__init__.py`` in ``tests/`` (the packages' tests stay rootdir-relative modules).
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
