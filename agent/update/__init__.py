"""Model updates over MQTT: the protocol, signed commands, the transfer, A/B slots, the canary.

Pure cores: :mod:`~agent.update.protocol` (topics, bundle ids), :mod:`~agent.update.commands`
(signed commands and the replay ledger). The protocol is documented in ``docs/mqtt-protocol.md``.
"""
