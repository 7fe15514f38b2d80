"""python -m xai <command> ...: the same CLIs as seedling-xai and the two scripts."""

import sys

from xai.cli import console_main

sys.exit(console_main())
