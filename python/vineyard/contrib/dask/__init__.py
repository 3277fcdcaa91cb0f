"""Dask collections over a vineyard cluster: see ``vineyard.contrib.dask.dask``."""
