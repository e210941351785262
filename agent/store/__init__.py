"""Durable store-and-forward of results: the SQLite outbox and the forwarder to MQTT."""
