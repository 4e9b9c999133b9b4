"""``python -m dnmf``: the ``dnmf`` command."""

import sys

from dnmf.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
