"""``python -m jaxreg`` is the ``jaxreg`` command."""

import sys

from jaxreg.cli import main

sys.exit(main())
