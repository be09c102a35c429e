"""Scene generators written apart from the training generator, for held-out evaluation.

``second_generator`` (families ``indep_oldtown``, ``indep_parkland``) and ``third_generator``
(``indep2_snowmelt``, ``indep2_railyard``) were each written without reading
``thermal_anomaly_segmenter.scenes``, its synthetic sets, or each other; they share only the
dataset layout writers of ``thermal_anomaly_segmenter.io``. A model is never trained on them
when it is scored on them (``benchmarks/heldout_families.py``). tests/test_architecture.py
checks that they import nothing of the training generator.
"""
