accelgen_gemm.v
