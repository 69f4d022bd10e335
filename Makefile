# nde - build, test, benchmark. `make test` is what CI runs.
CC        ?= cc
NVCC      ?= nvcc
STD       := -std=c99
WARN      := -Wall -Wextra -Werror -pedantic
OPT       ?= -O2 -march=native
OMP       ?= -fopenmp
SAN       := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDLIBS    := -lm
HEADERS   := $(wildcard nde.h nde_solvers.h nde_adjoint.h)
B         := build
TESTS     := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c)) quickstart
TEST_BINS := $(foreach t,$(TESTS),$(B)/$(t)_f32 $(B)/$(t)_f64 $(B)/$(t)_san)
EXAMPLES  := $(patsubst examples/%.c,$(B)/ex_%,$(wildcard examples/*.c))

.PHONY: all test check-headers examples examples-check bench peers demo cuda test-cuda clean
all: test

$(B):
	mkdir -p $@
$(B)/%_f32: tests/%.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(OPT) $(OMP) $< -o $@ $(LDLIBS)
$(B)/%_f64: tests/%.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(OPT) $(OMP) -DNDE_DOUBLE $< -o $@ $(LDLIBS)
$(B)/%_san: tests/%.c $(HEADERS) tests/nde_test.h | $(B)
	$(CC) $(STD) $(WARN) $(SAN) -DNDE_DOUBLE -DNDE_TEST_SANITIZE $< -o $@ $(LDLIBS)

# Every test binary in float, double, and double under ASan+UBSan; then the
# CUDA test (prints a skip line without a GPU). Last line: "N passed, N failed".
test: check-headers $(TEST_BINS) cuda-check
	@sh tests/run.sh $(TEST_BINS) $(wildcard $(B)/test_cuda)

# Compile-only checks: C99 and C11 with gcc and clang, NDE_STATIC, two TUs, C++.
check-headers: | $(B)
	@for h in $(HEADERS); do \
	  printf '#define NDE_IMPLEMENTATION\n#include "../%s"\n' $$h > $(B)/chk_impl.c; \
	  $(CC) -std=c99 $(WARN) -c $(B)/chk_impl.c -o $(B)/chk_c99.o || exit 1; \
	  $(CC) -std=c11 $(WARN) -c $(B)/chk_impl.c -o $(B)/chk_c11.o || exit 1; \
	  clang -std=c99 $(WARN) -c $(B)/chk_impl.c -o $(B)/chk_clang.o || exit 1; \
	  $(CC) -std=c99 $(WARN) -DNDE_STATIC -c $(B)/chk_impl.c -o $(B)/chk_static.o || exit 1; \
	  printf '#include "../%s"\n' $$h > $(B)/chk_decl.cpp; \
	  c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only $(B)/chk_decl.cpp || exit 1; \
	done
	@echo "check-headers: ok ($(HEADERS))"

# nde_cuda.h must always compile (CI has nvcc but no GPU).
cuda-check: | $(B)
	@if [ -f nde_cuda.h ] && [ -f tests/test_cuda.cu ] && command -v $(NVCC) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory cuda; else echo "cuda-check: skipped (no nde_cuda.h/test_cuda.cu or no nvcc)"; fi
cuda: | $(B)
	$(NVCC) -O2 -std=c++17 -Xcompiler -Wall,-Wextra,-Werror tests/test_cuda.cu nde_cuda.cu -o $(B)/test_cuda -lcublas
test-cuda: cuda
	@sh tests/run.sh $(B)/test_cuda

examples: $(EXAMPLES)
$(B)/ex_%: examples/%.c $(HEADERS) $(wildcard examples/common.h) | $(B)
	$(CC) $(STD) $(WARN) $(OPT) $(OMP) $< -o $@ $(LDLIBS)
# Runs the "// cc ..." line at the top of each example verbatim.
examples-check: | $(B)
	@for f in examples/*.c; do cmd=$$(sed -n '1s|^// *||p' $$f); echo "$$cmd"; sh -ec "$$cmd" || exit 1; done

demo: $(B)/ex_spiral
	./$(B)/ex_spiral --svg $(B)/spiral.svg --params $(B)/spiral.safetensors

bench:
	$(MAKE) -C bench run
peers:
	$(MAKE) -C bench peers

clean:
	rm -rf $(B)
