"""``python -m tocsin_cli`` is the ``tocsin`` command."""

import sys

from tocsin_cli import main

sys.exit(main())
