"""A slow figure (the total word count of a blog) cached and recomputed by a job. See README.md."""
