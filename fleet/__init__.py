"""``edge-fleet``: push model bundles to devices over MQTT, watch them, roll out, roll back."""
