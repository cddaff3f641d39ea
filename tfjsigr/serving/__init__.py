"""Serving the zoo: TF Serving configuration, REST/gRPC client, and a local REST/gRPC server."""

from tfjsigr.serving.client import Client, ServingError
from tfjsigr.serving.config import (
    ConfigError,
    build_model_server_config,
    load_model_server_config,
    parse_model_server_config,
    write_serving_config,
)
from tfjsigr.serving.server import create_app, serve

__all__ = [
    "Client",
    "ConfigError",
    "ServingError",
    "build_model_server_config",
    "create_app",
    "load_model_server_config",
    "parse_model_server_config",
    "serve",
    "write_serving_config",
]
