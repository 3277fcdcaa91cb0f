"""Integrations of vineyard with other systems (``vineyard.contrib.dask``)."""
