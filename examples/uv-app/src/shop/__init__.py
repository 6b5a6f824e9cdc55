"""The shop: a FastAPI app in a uv project."""
