"""sweep (placeholder: being written)."""
