"""Steering inside a vLLM engine: named levels compiled once, applied per request (``docs/serving.md``)."""
