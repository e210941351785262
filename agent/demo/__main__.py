"""``python -m agent.demo``: the whole path on the sample model (see :mod:`agent.demo.run`)."""

from agent.demo.run import main

raise SystemExit(main())
