import sys

from progs.cli import main

sys.exit(main())
