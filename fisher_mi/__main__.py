"""``python -m fisher_mi``: the same as the ``fisher-mi`` command."""

from fisher_mi.cli import main

raise SystemExit(main())
