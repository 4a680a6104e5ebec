"""Model formats: each loads an artifact and predicts scores in 0..1 from a float matrix."""
