"""`python -m shared.cli …`: the `howlerhire` command without the installed script."""

import sys

from shared.cli import main

if __name__ == "__main__":
    sys.exit(main())
