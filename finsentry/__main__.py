"""``python -m finsentry`` = the ``finsentry`` command."""

from finsentry.cli import main

raise SystemExit(main())
