import sys

from haechi.host.cli import main

sys.exit(main())
