"""Training: the gradient training loop, losses, checkpoints, learning rules, architecture search."""
