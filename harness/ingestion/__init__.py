"""The ingestion program: the only code that imports a student's modules.

It runs in its own (sandboxed) process as ``python -m harness.ingestion --submission DIR
--input DIR --output DIR``. It reads ``job.json`` and the arrays the scoring side put in the input
folder (never a test label), trains or loads the student's models, and writes predictions, samples
or scores as ``.npy`` files to the output folder. It never computes a score.
"""
