"""A mailer job with retries and a custom kiqpy_retry_in. See README.md."""
