"""Serving the zoo: TF Serving configuration, REST/gRPC client, and a local REST/gRPC server."""

from tfjsigr import _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    {
        "Client": "client",
        "ServingError": "client",
        "ConfigError": "config",
        "build_model_server_config": "config",
        "load_model_server_config": "config",
        "parse_model_server_config": "config",
        "write_serving_config": "config",
        "create_app": "server",
        "serve": "server",
    },
)
