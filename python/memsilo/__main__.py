"""``python -m memsilo serve --data ./data --listen 127.0.0.1:3300``: the bundled server.

Every argument is handed to the same command line as the ``memsilo`` binary.
"""

from __future__ import annotations

import sys

from . import _native


def main() -> int:
    """Runs the memsilo command line with this process's arguments."""
    return _native.serve(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
