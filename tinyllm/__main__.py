import sys

from tinyllm.cli import main

sys.exit(main())
