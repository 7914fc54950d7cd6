"""The HTTP face of TwinLoop (Ray Serve + FastAPI) and the ``twinloop`` command line."""
