"""``python -m alal.cli``: the same as the ``alal`` command."""

from alal.cli import main

raise SystemExit(main())
