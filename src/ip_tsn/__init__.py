"""ip-tsn: Flow-Distilled IP Two-Stream Networks for compressed-domain action recognition."""

__version__ = "0.1.0"
