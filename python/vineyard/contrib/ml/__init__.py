"""Machine-learning frameworks (``vineyard.contrib.ml.torch``)."""
