"""Adapter jobs of a mobile sync server: SourceJob, PingJob, BulkDataJob. See README.md."""
