"""``python -m jaxreg`` is the ``jaxreg`` command (see :mod:`jaxreg.cli`)."""

import sys

from jaxreg.cli import main

if __name__ == "__main__":  # importing the module (doctest collection, tools) runs nothing
    sys.exit(main())
