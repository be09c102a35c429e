"""The false-alarm stage after segmentation: the classifier, its use at predict time, and an
inspector's review turned into labels and examples.
"""
