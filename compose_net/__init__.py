"""compose-net: a Compose file's networking, built from plain Linux kernel objects."""

__version__ = "0.1.0"
