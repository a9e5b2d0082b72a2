"""The classic first job: a job that sleeps to stand in for slow work. See README.md."""
