"""What is trusted and what is enforced, decided without I/O: trust patterns and mirrors, the integrity verdict
from a registry's answer, and the enforcement policy that admission (and runtime prevention) apply.

A library: the service, `vigil image check` and the admission webhook decide with the same code."""
