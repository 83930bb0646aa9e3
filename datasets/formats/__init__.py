"""Readers and writers, one module per file format. Each returns objects that pass validate()."""
