"""Array-namespace evaluator: every metric of the VSSL negative-audio protocol on NumPy or CuPy."""
