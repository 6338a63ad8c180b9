from __future__ import annotations

import sys

# The bot process is built in the Discord issue; until then say so plainly instead of
# pretending to run.
sys.stderr.write("botapp: the Discord bot is not implemented yet (see the Discord issue).\n")
sys.exit(2)
