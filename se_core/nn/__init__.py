"""Layer 1: the SE unit and the networks it sits in (pure ``torch.nn``; imports only :mod:`se_core.util`)."""
