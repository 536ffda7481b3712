"""`python -m gen_factory.cli ...` runs the same CLI as `genfactory ...` (jobs and benches use it)."""

import sys

from gen_factory.cli import main

sys.exit(main())
