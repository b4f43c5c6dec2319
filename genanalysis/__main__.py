import sys

from genanalysis.cli import main

sys.exit(main())
