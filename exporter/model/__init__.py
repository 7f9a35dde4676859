"""What the exporter knows: the table of kinds, the snapshot, runs, endpoint outcomes, details."""
