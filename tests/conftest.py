"""Fixtures shared by the whole suite: real mosquitto brokers and converted sample models."""

pytest_plugins = ["tests.support.broker", "tests.support.models"]
