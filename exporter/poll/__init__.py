"""The poller: runs the jobs, keeps what was read, publishes snapshots, saves state."""
