"""Runtime analysis (Runtime Impact): what executed in a container, judged against its image.

Pure logic only: ``paths`` (a file manifest as a filesystem: symlinked parents and usrmerge
resolved), ``rules`` (the suspicious-exec rule table and its allow-list), ``evaluate`` (records ->
detections: runtime_drift, tampered_binary, suspicious_exec, running_vulnerability), ``risk`` (the
risk formula). The analyzer that feeds it from the store is ``service/jobs/runtime.py``; packages
not observed running are labelled in ``service/store/runtime_labels.py``; the rules and allow-list
API is ``service/api/runtime.py``. See docs/runtime-analysis.md and docs/risk.md.
"""
