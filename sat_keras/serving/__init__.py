"""Serving exported captioners: clients for TF Serving and a local server."""

from sat_keras.serving.client import CaptionClient
from sat_keras.serving.client import CaptionServiceError
from sat_keras.serving.server import LocalServer
from sat_keras.serving.server import serve

__all__ = ["CaptionClient", "CaptionServiceError", "LocalServer", "serve"]
