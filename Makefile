# podpin's tasks. `make test` is the whole check CI runs; it installs what a
# fresh machine lacks (Debian packages, Go modules, the test control plane).

# Builds use Go 1.27.3 (fetched by the go command from the module proxy):
# its standard library has the security fixes the machine's Go may lack.
export GOTOOLCHAIN := $(or $(PODPIN_GOTOOLCHAIN),go1.27.3)

.PHONY: build test demo bench manifests memory-proof

build:
	go build -o bin/podpin ./cmd/podpin

test:
	scripts/test

demo:
	go run ./cmd/podpin demo

bench:
	bench/run

# The memory proof at full size: podpin in a memory cgroup of the chart's
# 256 MiB limit, flooded with 5M new keys while 900 sessions stay pinned
# (root; about 7 minutes). scripts/test runs it with 2.3M keys.
memory-proof:
	PODPIN_MEMORY_PROOF_KEYS=5000000 go test -count=1 -timeout 30m -v -run 'TestMemoryStaysWithinTheContainerLimit' ./cmd/podpin/

# deploy/manifests/podpin.yaml: the Helm chart with its default values, as
# helm template renders it (tools/chart, after helm lint --strict).
manifests:
	go -C tools/chart run . -o ../../deploy/manifests/podpin.yaml
