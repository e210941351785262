"""Home Assistant MQTT discovery: the payloads (pure) and the announcer that publishes them."""
