"""``python -m monitor.cli`` = the ``monitor`` command (the demo supervisor starts children this way)."""

import sys

from monitor.cli import main

sys.exit(main())
