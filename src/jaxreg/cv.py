"""cv (placeholder: being written)."""
