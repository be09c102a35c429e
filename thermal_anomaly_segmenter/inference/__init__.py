"""Where a frame becomes probabilities and a mask: the Segmenter, the GPU engine and post-
processing.
"""
