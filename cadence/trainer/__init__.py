"""The training, evaluation and prediction loops and their state."""
