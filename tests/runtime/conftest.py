"""Runtime tests use the sample model converted by our converter (tests/support/models.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # until pyproject sets pytest `pythonpath = ["."]`
    sys.path.insert(0, str(_ROOT))

from tests.support.models import converted_model, sample_models  # noqa: E402

__all__ = ["converted_model", "sample_models"]
