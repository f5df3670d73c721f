"""``python -m kafkars``: the ``kafkars`` command (see :mod:`kafkars.cli`)."""

from kafkars.cli import main

raise SystemExit(main())
