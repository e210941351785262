"""Workstation tools: Keras to quantized TFLite, validation reports, signed model bundles.

TensorFlow is imported only inside the conversion worker process, never at module level here.
"""
