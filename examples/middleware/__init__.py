"""Client and server middleware that carry a tenant and request id into jobs. See README.md."""
