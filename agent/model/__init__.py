"""The served model: a verified bundle loaded into an interpreter and pipeline, A/B slots,
the watch window and rollback. ``agent.update`` uses it; it never imports ``agent.update``."""
