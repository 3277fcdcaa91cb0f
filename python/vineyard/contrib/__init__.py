"""Integrations of vineyard with other libraries and systems (``vineyard.contrib.ml.torch``,
``vineyard.contrib.dask``)."""
