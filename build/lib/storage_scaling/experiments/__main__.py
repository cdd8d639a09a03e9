"""``python -m storage_scaling.experiments``: an alias of ``storage-scaling run``."""

import sys

from .command import main

sys.exit(main())
