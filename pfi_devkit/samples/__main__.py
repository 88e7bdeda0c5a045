"""``python -m pfi_devkit.samples DIR``: write the project's sample messages into ``DIR``."""

import sys

from pfi_devkit.samples import main

sys.exit(main())
