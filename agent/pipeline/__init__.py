"""The inference pipeline's pure parts: tensors, pre-processing and post-processing."""
