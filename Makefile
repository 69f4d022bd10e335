# nde - build, test, benchmark. `make test` is what CI runs.
CC        ?= cc
NVCC      ?= nvcc
STD       := -std=c99
WARN      := -Wall -Wextra -Werror -pedantic
OPT       ?= -O2 -march=native
OMP       ?= -fopenmp
SAN       := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDLIBS    := -lm
HEADERS   := $(wildcard nde.h nde_solvers.h nde_adjoint.h nde_zoo.h)
B         := build
TESTS     := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c)) quickstart
TEST_BINS := $(foreach t,$(TESTS),$(B)/$(t)_f32 $(B)/$(t)_f64 $(B)/$(t)_san)
EXAMPLES  := $(patsubst examples/%.c,$(B)/ex_%,$(wildcard examples/*.c))

.PHONY: all test check-headers examples examples-check examples-smoke bench peers demo cuda cuda-check test-cuda clean
all: test

$(B):
	mkdir -p $@
$(B)/%_f32: tests/%.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(OPT) $(OMP) $< -o $@ $(LDLIBS)
$(B)/%_f64: tests/%.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(OPT) $(OMP) -DNDE_DOUBLE $< -o $@ $(LDLIBS)
$(B)/%_san: tests/%.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(SAN) -DNDE_DOUBLE -DNDE_TEST_SANITIZE $< -o $@ $(LDLIBS)

# The matmul's other SIMD paths, on an AVX-512 machine too: AVX2+FMA (float,
# double) and portable C (float; the ASan build covers it in double).
ISA_BINS := $(B)/test_gemm_avx2_f32 $(B)/test_gemm_avx2_f64 $(B)/test_gemm_portable_f32
$(B)/test_gemm_avx2_f32: tests/test_gemm.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(OPT) -mno-avx512f $(OMP) $< -o $@ $(LDLIBS)
$(B)/test_gemm_avx2_f64: tests/test_gemm.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(OPT) -mno-avx512f $(OMP) -DNDE_DOUBLE $< -o $@ $(LDLIBS)
$(B)/test_gemm_portable_f32: tests/test_gemm.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) -O2 $(OMP) $< -o $@ $(LDLIBS)

# tests/test_ex_<name>.c includes examples/<name>.c (its core functions, no main)
EX_TESTS  := $(patsubst tests/test_ex_%.c,%,$(wildcard tests/test_ex_*.c))
$(foreach e,$(EX_TESTS),$(eval $(B)/test_ex_$(e)_f32 $(B)/test_ex_$(e)_f64 $(B)/test_ex_$(e)_san: examples/$(e).c examples/common.h))

# Every test binary in float, double, and double under ASan+UBSan; the gemm
# on its other SIMD paths; the CUDA test under the CPU emulator
# (tests/cuda_emu.h); then the real CUDA test (prints a skip line without a
# GPU). Last line: "N passed, N failed".
test: check-headers $(TEST_BINS) $(ISA_BINS) $(EMU_BINS) cuda-check
	@sh tests/run.sh $(TEST_BINS) $(ISA_BINS) $(EMU_BINS) $(wildcard $(B)/test_cuda $(B)/test_cuda_f64)

# Compile-only checks: C99 and C11 with gcc and clang, NDE_STATIC, two TUs, C++.
check-headers: | $(B)
	@for h in $(HEADERS); do \
	  printf '#define NDE_IMPLEMENTATION\n#include "../%s"\n' $$h > $(B)/chk_impl.c; \
	  $(CC) -std=c99 $(WARN) -c $(B)/chk_impl.c -o $(B)/chk_c99.o || exit 1; \
	  $(CC) -std=c11 $(WARN) -c $(B)/chk_impl.c -o $(B)/chk_c11.o || exit 1; \
	  clang -std=c99 $(WARN) -c $(B)/chk_impl.c -o $(B)/chk_clang.o || exit 1; \
	  $(CC) -std=c99 $(WARN) -DNDE_STATIC -c $(B)/chk_impl.c -o $(B)/chk_static.o || exit 1; \
	  $(CC) -std=c99 $(WARN) -O3 -c $(B)/chk_impl.c -o $(B)/chk_o3.o || exit 1; \
	  printf '#include "../%s"\n' $$h > $(B)/chk_decl.cpp; \
	  c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only $(B)/chk_decl.cpp || exit 1; \
	done
	@if [ -f nde_cuda.h ]; then \
	  printf '#define NDE_IMPLEMENTATION\n#include "../nde_cuda.h"\n' > $(B)/chk_cuda.c; \
	  $(CC) -std=c99 $(WARN) -c $(B)/chk_cuda.c -o $(B)/chk_cuda_c99.o || exit 1; \
	  clang -std=c99 $(WARN) -c $(B)/chk_cuda.c -o $(B)/chk_cuda_clang.o || exit 1; \
	  printf '#include "../nde_cuda.h"\n' > $(B)/chk_cuda.cpp; \
	  c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only $(B)/chk_cuda.cpp || exit 1; \
	fi
	@echo "check-headers: ok ($(HEADERS) $(wildcard nde_cuda.h))"

# nde_cuda.h must always compile (CI has nvcc but no GPU): float and double.
# Device code for sm_90 (H100/H200) plus compute_80 PTX that the driver compiles
# for any other GPU of compute capability 8.0 or later (override NVCC_ARCH).
# The test's C part (nde.h's implementation) is tests/cuda_host.c, compiled as C.
NVCC_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
NVCC_FLAGS := -O2 -std=c++17 -Xcompiler -Wall,-Wextra,-Werror $(NVCC_ARCH)
CUDA_SRC  := tests/test_cuda.cu tests/cuda_host.c nde_cuda.cu
CUDA_DEPS := $(CUDA_SRC) nde_cuda.h $(HEADERS) tests/nde_test.h
cuda-check: | $(B)
	@if [ -f nde_cuda.h ] && [ -f tests/test_cuda.cu ] && command -v $(NVCC) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory cuda; else echo "cuda-check: skipped (no nde_cuda.h/test_cuda.cu or no nvcc)"; fi
cuda: $(B)/test_cuda $(B)/test_cuda_f64 $(B)/quickstart_cuda
# nde_cuda.h's quick start, built with its documented one-line command (+ warnings).
$(B)/quickstart_cuda: tests/quickstart_cuda.c nde_cuda.cu nde_cuda.h $(HEADERS) | $(B)
	$(NVCC) -O2 -Xcompiler -Wall,-Wextra,-Werror tests/quickstart_cuda.c nde_cuda.cu -lcublas -o $@
$(B)/test_cuda: $(CUDA_DEPS) | $(B)
	$(NVCC) $(NVCC_FLAGS) $(CUDA_SRC) -o $@ -lcublas
$(B)/test_cuda_f64: $(CUDA_DEPS) | $(B)
	$(NVCC) $(NVCC_FLAGS) -DNDE_DOUBLE $(CUDA_SRC) -o $@ -lcublas
test-cuda: cuda
	@sh tests/run.sh $(B)/test_cuda $(B)/test_cuda_f64

# The CUDA backend's kernels on the CPU: nde_cuda.cu and tests/test_cuda.cu built
# with the host C++ compiler against tests/cuda_emu.h (no GPU, no CUDA toolkit).
CXX       ?= c++
EMU_FLAGS := -std=c++17 -Wall -Wextra -Werror -O2 -DNDE_CUDA_EMULATE='"tests/cuda_emu.h"' -DTEST_NAME='"test_cuda_emu"'
EMU_BINS  := $(if $(wildcard nde_cuda.h),$(B)/test_cuda_emu_f32 $(B)/test_cuda_emu_f64 $(B)/test_cuda_emu_san)
$(B)/test_cuda_emu_f32: $(CUDA_DEPS) tests/cuda_emu.h | $(B)
	$(CC) $(STD) $(WARN) -O2 -c tests/cuda_host.c -o $(B)/cuda_host_f32.o
	$(CXX) $(EMU_FLAGS) -x c++ tests/test_cuda.cu -x c++ nde_cuda.cu -x none $(B)/cuda_host_f32.o -o $@ -lm
$(B)/test_cuda_emu_f64: $(CUDA_DEPS) tests/cuda_emu.h | $(B)
	$(CC) $(STD) $(WARN) -O2 -DNDE_DOUBLE -c tests/cuda_host.c -o $(B)/cuda_host_f64.o
	$(CXX) $(EMU_FLAGS) -DNDE_DOUBLE -x c++ tests/test_cuda.cu -x c++ nde_cuda.cu -x none $(B)/cuda_host_f64.o -o $@ -lm
# ... and under ASan+UBSan: emulated device memory is host memory, so a kernel's
# out-of-bounds access is caught here (the real test_cuda never runs under ASan).
$(B)/test_cuda_emu_san: $(CUDA_DEPS) tests/cuda_emu.h | $(B)
	$(CC) $(STD) $(WARN) $(SAN) -DNDE_DOUBLE -c tests/cuda_host.c -o $(B)/cuda_host_san.o
	$(CXX) $(EMU_FLAGS) $(SAN) -DNDE_DOUBLE -x c++ tests/test_cuda.cu -x c++ nde_cuda.cu -x none $(B)/cuda_host_san.o -o $@ -lm

examples: $(EXAMPLES)
$(B)/ex_%: examples/%.c $(HEADERS) $(wildcard examples/common.h) | $(B)
	$(CC) $(STD) $(WARN) $(OPT) $(OMP) $< -o $@ $(LDLIBS)
# Runs the "// cc ..." line at the top of each example verbatim.
examples-check: | $(B)
	@for f in examples/*.c; do cmd=$$(sed -n '1s|^// *||p' $$f); echo "$$cmd"; sh -ec "$$cmd" || exit 1; done

# The model-zoo examples with their defaults; each exits non-zero when it misses
# the loss stated in its header comment (about 30 s of CPU in all).
ZOO_EXAMPLES := neural_sde augmented_node galerkin_node hamiltonian_nn lagrangian_nn cnf latent_ode graph_ode \
                hypersolver multiple_shooting
examples-smoke: $(patsubst %,$(B)/ex_%,$(ZOO_EXAMPLES))
	@for e in $(ZOO_EXAMPLES); do out=$$(./$(B)/ex_$$e 2>/dev/null); rc=$$?; printf '%s: %s\n' $$e "$$(printf '%s\n' "$$out" | tail -n 1)"; \
	  [ $$rc -eq 0 ] || { echo "$$e missed its stated loss"; exit 1; }; done

demo: $(B)/ex_spiral
	./$(B)/ex_spiral --svg $(B)/spiral.svg --params $(B)/spiral.safetensors

bench:
	$(MAKE) -C bench run
peers:
	$(MAKE) -C bench peers

clean:
	rm -rf $(B)
