"""What happens around the steps: the pictures and clips written, the run's lines, the metrics table, checkpoints
and interruptions."""
