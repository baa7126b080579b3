"""``report.html``: one self-contained page per run (:mod:`.page` builds it, pure; :mod:`.publish` logs it)."""
