"""The attempt: the contract between the controller (login node) and the runner (compute node).

An attempt is a folder ``jobs/<job_id>/attempt-<n>/`` holding the input, the files it reads, the
controller's ``spec.json`` (what to run, with which resources) and, once run, the runner's
``result.json`` (how it ended). Both files are typed records owned by ``attempt.files``; where the
attempt's scratch lives (and what a killed runner left behind) is ``attempt.scratch``.
"""
