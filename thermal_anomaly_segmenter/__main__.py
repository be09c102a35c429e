"""``python -m thermal_anomaly_segmenter`` runs the ``taseg`` command."""

import sys

from thermal_anomaly_segmenter.cli.parser import main

sys.exit(main())
