"""The JSON answer of a refused API request: ``{"error": ..., "message": ...}`` with its status."""

from __future__ import annotations

from typing import Any

from quart import jsonify


def problem(status: int, error: str, message: str) -> Any:
    """One clear line for the caller: a short error code and a message saying what to do."""
    response = jsonify({"error": error, "message": message})
    response.status_code = status
    return response
