"""models (placeholder: being written)."""
