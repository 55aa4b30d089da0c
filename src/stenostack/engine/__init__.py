"""Queueing requests and running them on the models, off the event loop."""
