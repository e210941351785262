"""``python -m demo``: the whole path on the sample model (see :mod:`demo.run`)."""

from demo.run import main

raise SystemExit(main())
