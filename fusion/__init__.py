"""AHRS orientation filters (batch, many-sensor, streaming) and zero-velocity-aided integration."""
