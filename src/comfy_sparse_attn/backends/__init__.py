"""One small adapter per attention library (each imports its library lazily)."""
