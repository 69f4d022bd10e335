/* tests/cuda_host.c - the C99 implementation of nde for tests/test_cuda.cu. nvcc
   compiles .cu files as C++, while nde.h's implementation is C; a program using the
   CUDA backend keeps it in a .c file like this one (see nde_cuda.h, USAGE). */
#define NDE_IMPLEMENTATION
#define NDE_CONV_BATCH_REALS 2048   /* small: the device conv tests run several chunks */
#include "../nde_adjoint.h"   /* nde.h, nde_solvers.h and nde_adjoint.h */
