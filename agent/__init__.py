"""Edge inference agent: the device side and the pure core shared with the converter.

Nothing in this package imports TensorFlow. The converter (``convert``) imports the shared
schemas from here (model metadata, bundle format), never the other way round.
"""

__version__ = "0.1.0"
