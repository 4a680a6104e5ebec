"""reportscore: score abuse reports so moderators see the most urgent first."""

__version__ = "0.1.0"
