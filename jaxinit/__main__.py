"""``python -m jaxinit``: the ``jaxinit`` command (see :mod:`jaxinit.cli`)."""

import sys

from jaxinit.cli import main

if __name__ == "__main__":
    sys.exit(main())
