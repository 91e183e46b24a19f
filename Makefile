# The two commands of the README: `make demo` and `make test`. Each installs missing Debian
# packages first (scripts/deps.sh), then configures and builds.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps configure demo test sanitize bench clean

deps:
	@bash scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target softmax_jacobian custom_op backprop_walkthrough \
	  train_digits
	./$(BUILD)/examples/softmax_jacobian
	./$(BUILD)/examples/custom_op
	./$(BUILD)/examples/backprop_walkthrough $(BUILD)/backprop_walkthrough_out
	./$(BUILD)/examples/train_digits --out-dir $(BUILD)/train_digits_out

test: configure
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The whole test suite under AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer (.ci/run
# runs it after `make test`). The install test is left out: it builds a consumer without them.
sanitize: deps
	cmake -S . -B $(BUILD)-sanitize -DCMAKE_BUILD_TYPE=Debug -DTAPEGRAD_SANITIZE=ON \
	  -DTAPEGRAD_NATIVE=OFF -DTAPEGRAD_BUILD_BENCHMARKS=OFF
	cmake --build $(BUILD)-sanitize -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(BUILD)-sanitize --output-on-failure -j $(JOBS) -E '^install\.'

# Not part of the test command: timings belong to benchmarks. Add TORCH=1 to compare with
# libtorch (installs libtorch-dev).
bench: deps
	$(if $(TORCH),apt-get install -y -qq libtorch-dev >/dev/null,)
	python3 scripts/bench.py $(if $(TORCH),--torch,)

clean:
	rm -rf $(BUILD)
