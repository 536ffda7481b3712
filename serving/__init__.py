"""The Ray Serve application (HTTP API) of gen_factory."""
