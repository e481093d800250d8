"""``python -m kinkgrad`` is the ``kinkgrad`` command."""

import sys

from kinkgrad.cli import main

sys.exit(main())
