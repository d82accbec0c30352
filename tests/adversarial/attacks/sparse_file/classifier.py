from plain_model import Model  # noqa: F401  (the attack is not in the model)
