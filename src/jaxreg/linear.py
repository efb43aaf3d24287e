"""linear (placeholder: being written)."""
