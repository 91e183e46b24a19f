# The two commands of the README: `make demo` and `make test`. Each installs missing Debian
# packages first (scripts/deps.sh), then configures and builds.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps configure demo test clean

deps:
	@bash scripts/deps.sh

configure: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target quickstart softmax_jacobian custom_op train_digits
	./$(BUILD)/examples/softmax_jacobian
	./$(BUILD)/examples/custom_op
	./$(BUILD)/examples/train_digits --out-dir $(BUILD)/train_digits_out

test: configure
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)
