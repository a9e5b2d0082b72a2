"""A resumable export: an iterable job that survives restarts."""
