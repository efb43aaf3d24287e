"""datasets (placeholder: being written)."""
