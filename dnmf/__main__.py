import sys

from dnmf.cli import main

sys.exit(main())
