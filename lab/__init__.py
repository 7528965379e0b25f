"""The domain: topology model and validation, names and labels, settings, lab state."""
