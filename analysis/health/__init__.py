"""Whether a trained network learned anything: the numbers (:mod:`.probe`, one pass over validation data), the
verdict (:mod:`.verdict`, numbers in, ``ok`` or reasons out) and its thresholds (:mod:`.settings`). Pure: imports
neither Lightning nor MLflow; only :mod:`.probe` needs torch."""
