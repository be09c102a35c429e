"""Scoring a model on a labelled split: pixel and object metrics, the calibration fit and the
threshold choice.
"""
