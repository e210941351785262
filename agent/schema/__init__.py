"""The model's schema, shared by the converter (writer) and the agent (reader).

``meta`` describes a model's tensors, pre-processing and labels; ``canary`` is the format of the
reference inputs and outputs a bundle carries to prove itself. Pure data: no files, no runtime.
Everything that handles models (bundle, pipeline, runtime, the served model, the converter)
imports it; it imports nothing of theirs.
"""
