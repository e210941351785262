"""Model updates over MQTT: the protocol, signed commands, the transfer, the canary.

Pure cores: :mod:`~agent.update.protocol` (topics, bundle ids), :mod:`~agent.update.commands`
(signed commands and the replay ledger), :mod:`~agent.update.transfer` (block bitmap, deadlines),
:mod:`~agent.update.records`. The served model, its A/B slots and watch window live in
:mod:`agent.model`, which this package uses and which never imports it. The protocol is
documented in ``docs/mqtt-protocol.md``.
"""
