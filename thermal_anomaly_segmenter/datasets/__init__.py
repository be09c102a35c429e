"""Building a dataset in the TASeg layout from a survey: TIFFs, corridor masks or a pipe network,
and hand labels or an inspector's review. The layout itself is
:mod:`thermal_anomaly_segmenter.io.datasets`; synthetic sets are
:mod:`thermal_anomaly_segmenter.scenes.synthetic`.
"""
