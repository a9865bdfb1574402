"""`python -m larappp`: the same command as `larappp`."""

import sys

from larappp.cli import main

sys.exit(main())
