# The two commands of the README: `make demo` and `make test`. Each installs missing Debian
# packages first (scripts/deps.sh), then configures and builds.
SHELL := /bin/bash
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps configure demo test sanitize tsan fuzz reference bench clean

deps:
	@bash scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target softmax_jacobian custom_op backprop_walkthrough \
	  train_digits train_digits_cnn sequence_prediction train_char_gpt
	./$(BUILD)/examples/softmax_jacobian
	./$(BUILD)/examples/custom_op
	./$(BUILD)/examples/backprop_walkthrough $(BUILD)/backprop_walkthrough_out
	./$(BUILD)/examples/train_digits --out-dir $(BUILD)/train_digits_out
	./$(BUILD)/examples/train_digits_cnn --out-dir $(BUILD)/train_digits_cnn_out
	./$(BUILD)/examples/sequence_prediction
	./$(BUILD)/examples/train_char_gpt --steps 300 --warmup 30 --eval-interval 100 \
	  --sample-interval 300 --out-dir $(BUILD)/train_char_gpt_out

test: configure
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The sanitizer builds compile at -O1 with line tables only (-g1): enough for the sanitizers'
# stack traces, and half the compile time of RelWithDebInfo's -O2 -g (ops/attention.cpp under
# ASan: 34 s against 70 s), which made these builds most of CI's hour. At -O0 the tests took 40 min.
SANITIZER_BUILD = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"

# The whole test suite under AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer (.ci/run
# runs it after `make test`). The install test is left out: it builds a consumer without them.
sanitize: deps
	cmake -S . -B $(BUILD)-sanitize $(SANITIZER_BUILD) -DTAPEGRAD_SANITIZE=ON \
	  -DTAPEGRAD_NATIVE=OFF -DTAPEGRAD_BUILD_BENCHMARKS=OFF
	cmake --build $(BUILD)-sanitize -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(BUILD)-sanitize --output-on-failure -j $(JOBS) -E '^install\.'

# The threaded tests under ThreadSanitizer (tests/CMakeLists.txt compiles only their files there). Any report
# fails the run.
TSAN_TESTS ?= Threads.*:Reliability.*Thread*:VersionCounter.*:ParallelFor.*
tsan: deps
	cmake -S . -B $(BUILD)-tsan $(SANITIZER_BUILD) -DTAPEGRAD_TSAN=ON \
	  -DTAPEGRAD_NATIVE=OFF -DTAPEGRAD_BUILD_BENCHMARKS=OFF
	cmake --build $(BUILD)-tsan -j $(JOBS) --target tapegrad_tests
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ./$(BUILD)-tsan/tests/tapegrad_tests --gtest_filter='$(TSAN_TESTS)'

# libFuzzer targets (clang 16 from Debian, with ASan and UBSan), each run for FUZZ_SECONDS on a
# copy of its committed seed corpus; any crash fails. .ci/run runs it after the sanitizer tests.
# The fixed seed makes CI replay the same mutations each run, so a red CI means a change broke
# something rather than that the fuzzer got lucky; FUZZ_SEED=0 explores with a random seed.
FUZZ_SECONDS ?= 60
FUZZ_SEED ?= 1
fuzz:
	@bash scripts/deps.sh clang-16 libclang-rt-16-dev
	CC=clang-16 CXX=clang++-16 cmake -S . -B $(BUILD)-fuzz $(SANITIZER_BUILD) \
	  -DTAPEGRAD_FUZZ=ON -DTAPEGRAD_NATIVE=OFF -DTAPEGRAD_BUILD_TESTS=OFF \
	  -DTAPEGRAD_BUILD_EXAMPLES=OFF -DTAPEGRAD_BUILD_BENCHMARKS=OFF
	cmake --build $(BUILD)-fuzz -j $(JOBS)
	for target in csv ops safetensors; do \
	  corpus=$(BUILD)-fuzz/corpus-$$target; log=$(BUILD)-fuzz/fuzz-$$target.log; \
	  rm -rf $$corpus && cp -r fuzz/corpus/$$target $$corpus || exit 1; \
	  ./$(BUILD)-fuzz/fuzz/fuzz_$$target -max_total_time=$(FUZZ_SECONDS) -seed=$(FUZZ_SEED) -rss_limit_mb=4096 \
	    -artifact_prefix=$(BUILD)-fuzz/ -print_final_stats=1 $$corpus > $$log 2>&1; status=$$?; \
	  echo "fuzz_$$target: exit $$status, $$(grep -E '^stat::number_of_executed_units' $$log)"; \
	  if [ $$status -ne 0 ]; then tail -n 40 $$log; exit 1; fi; \
	done

# Regenerates tests/reference/*.json from PyTorch (Debian's python3-torch, installed here if
# missing). Run by hand after changing an op; CI only replays the committed fixtures.
reference:
	@bash scripts/deps.sh python3-torch
	for script in scripts/make_*reference.py; do /usr/bin/python3 $$script || exit 1; done

# Not part of the test command: timings belong to benchmarks. Add TORCH=1 to compare with
# libtorch (installs libtorch-dev, and OpenBLAS: without it Debian's libtorch multiplies matrices with the
# reference BLAS, 2 GFLOP/s here).
bench: deps
	$(if $(TORCH),apt-get install -y -qq libtorch-dev libopenblas0-pthread python3-torch >/dev/null,)
	python3 scripts/bench.py $(if $(TORCH),--torch,)

clean:
	rm -rf $(BUILD)
