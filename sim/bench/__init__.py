"""The measurements behind ``accelgen bench``."""
