"""Events: per-frame or per-window results turned into what people act on (start, update, end).

:mod:`agent.events.tracker` is the pure core (labels in, event messages out, time passed in);
:mod:`agent.events.message` the wire format on ``<prefix>/<device>/events``;
:mod:`agent.events.publisher` the thin adapter that puts them through the durable outbox.
"""
