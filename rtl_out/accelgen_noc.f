accelgen_noc.v
