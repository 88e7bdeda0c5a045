import sys

from pfi.cli import main

sys.exit(main())
