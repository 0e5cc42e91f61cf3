"""zhiku's HTTP server: FastAPI app factory, routes, errors, metrics."""
