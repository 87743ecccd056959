"""The REST API under /api/v1: a FastAPI application of its own, mounted by ``newsletter.web.app``."""
