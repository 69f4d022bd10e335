/* nde_cuda.cu - the CUDA implementation of nde (see nde_cuda.h); compile with nvcc. */
#define NDE_CUDA_IMPLEMENTATION
#include "nde_cuda.h"
