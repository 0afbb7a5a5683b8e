"""``python -m genesys``: the same as the ``genesys`` command."""

import sys

from genesys.cli import main

sys.exit(main())
