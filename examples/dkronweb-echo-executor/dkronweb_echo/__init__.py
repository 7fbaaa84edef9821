"""Example dkronweb executor plugin."""
