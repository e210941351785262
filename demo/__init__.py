"""``make demo``: the whole path on the sample model, run as a user would (workstation only)."""
