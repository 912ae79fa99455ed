# podpin's tasks. `make test` is the whole check CI runs; it installs what a
# fresh machine lacks (Debian packages, Go modules, the test control plane).

# Builds use Go 1.27.3 (fetched by the go command from the module proxy):
# its standard library has the security fixes the machine's Go may lack.
export GOTOOLCHAIN := $(or $(PODPIN_GOTOOLCHAIN),go1.27.3)

.PHONY: build test demo bench

build:
	go build -o bin/podpin ./cmd/podpin

test:
	scripts/test

demo:
	go run ./cmd/podpin demo

bench:
	bench/run
