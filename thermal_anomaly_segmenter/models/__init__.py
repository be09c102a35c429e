"""Model handling: the registry of model types, the network wrapper, native and published model
folders, normalisation, ONNX export and the triangle baseline.
"""
