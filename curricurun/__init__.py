"""curricurun: published training curricula for vision models, exact on any number of processes."""

__version__ = "0.1.0"
