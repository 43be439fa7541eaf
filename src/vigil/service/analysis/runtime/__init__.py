"""Runtime analysis (Runtime Impact): what executed in a container, judged against its image.

Pure logic only: ``paths`` (a file manifest as a filesystem: symlinked parents and usrmerge
resolved), ``rules`` (the one runtime rule table, exec and activity rules, and its allow-list),
``evaluate`` (records -> detections: runtime_drift, tampered_binary, suspicious_exec,
running_vulnerability; activities -> file_tampering, sensitive_file_read, container_escape_attempt,
ptrace_attach, kernel_activity), ``risk`` (the
risk formula). The analyzer that feeds it from the store is ``service/jobs/runtime.py``; packages
not observed running are labelled in ``service/store/runtime_labels.py``; the rules and allow-list
API is ``service/api/runtime.py``. See docs/runtime-analysis.md and docs/risk.md.
"""
