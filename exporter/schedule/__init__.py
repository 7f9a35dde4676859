"""When to read what: the plan, the scheduler, the adaptive timing and the reads below the plan."""
