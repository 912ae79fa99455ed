# podpin's tasks. `make test` is the whole check CI runs; it installs what a
# fresh machine lacks (Debian packages, Go modules, the test control plane).

.PHONY: build test demo bench

build:
	go build -o bin/podpin ./cmd/podpin

test:
	scripts/test

demo:
	go run ./cmd/podpin demo

bench:
	bench/run
