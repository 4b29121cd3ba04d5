"""Training: pure step builders (``steps``) and the one impure loop (``loop``)."""
