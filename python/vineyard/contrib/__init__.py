"""Integrations of vineyard with other libraries (``vineyard.contrib.ml.torch``)."""
