"""``python -m thermal_anomaly_segmenter`` runs the ``taseg`` command."""

import sys

from .cli import main

sys.exit(main())
