"""How an application tests its own jobs with kiqpy's fake and inline modes. See README.md."""
