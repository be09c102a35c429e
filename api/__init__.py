"""DEEPaaS adapter of TASeg (filled by the API issue)."""
