"""baodao."""
