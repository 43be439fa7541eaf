"""Runtime analysis (Runtime Impact): what executed in a container, judged against its image.

Pure logic (no I/O): ``paths`` (a file manifest as a filesystem: symlinked parents and
usrmerge resolved), ``rules`` (the suspicious-exec rule table and its allow-list),
``evaluate`` (records -> detections: runtime_drift, tampered_binary, suspicious_exec,
running_vulnerability), ``risk`` (the risk formula). I/O: ``runner`` (the analyzer: the
store's pending records -> findings; woken by runtime ingest), ``labels`` (vulnerable
packages not observed running), ``lifecycle`` (wiring into the service), ``routes``
(the rules and allow-list API). See docs/runtime-analysis.md and docs/risk.md.
"""
