"""Sensor devices: table contract, frames, device profiles, mounting alignment, simulated devices.

This is the lowest stage: every other stage may import it, it imports none of them.
"""
