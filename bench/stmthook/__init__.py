"""The benchmark's statement counter (`sitecustomize.py`, loaded into its children)."""
