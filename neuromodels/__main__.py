import sys

from neuromodels.cli import main

sys.exit(main())
