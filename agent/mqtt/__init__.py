"""MQTT: topic and message value types (pure), connection policy (pure), the paho adapter."""
