"""The daemon: the service loop that wires everything, signals, sd_notify, watchdog, metrics."""
