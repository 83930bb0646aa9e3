"""Subcommands of the neuromodels command, one module per area."""
