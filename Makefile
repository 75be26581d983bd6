# gyre — GitOps reconciler and workflow engine for Cyclone pipelines.

# The Kubernetes and Flux libraries need Go 1.27; the go command fetches it.
export GOTOOLCHAIN := go1.27.4

BIN := $(CURDIR)/bin
GO_TEST_FLAGS ?= -timeout 25m
PKGS ?= ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: ## Build the test control plane, a kubelet and code tools into bin/ (cached by version); install the real node's Debian packages
	@hack/tools/debian.sh
	@hack/tools/install.sh $(BIN)

.PHONY: build
build: ## Build bin/gyre
	@# Static: stage Pods copy the binary into workload images of any libc
	@# (gyre install-self, gyre collect).
	@# -trimpath: no build-machine paths in the binary, so the image is
	@# reproducible.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/gyre ./cmd/gyre

.PHONY: image
image: build ## Build gyre's image into bin/gyre-image.tar (gyre.dev/gyre:dev) and print its digest
	@# No Docker: go-containerregistry writes a docker-save tarball that
	@# docker load and ctr images import read. SOURCE_DATE_EPOCH sets its time.
	@go run ./hack/image -binary $(BIN)/gyre -o $(BIN)/gyre-image.tar

.PHONY: run
run: image tools ## Run gyre end to end on a local control plane and the example repository (gyre dev)
	$(BIN)/gyre dev

.PHONY: generate
generate: ## Generate deepcopy code and CRDs from api/
	@hack/tools/install.sh $(BIN) controller-gen
	$(BIN)/controller-gen object paths=./api/...
	$(BIN)/controller-gen crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	go run ./hack/crdtrim config/crd/bases/cyclone.dev_stages.yaml spec.pod.spec

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@hack/tools/install.sh $(BIN) staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(BIN)/staticcheck ./...

.PHONY: verify
verify: generate lint ## Regenerate and fail on any diff; lint
	@git diff --exit-code -- api config || (echo "generated files are stale: run make generate"; exit 1)

.PHONY: test
test: tools image ## Run every test against a real control plane and a real node (installs what it needs)
	go vet ./...
	go test $(GO_TEST_FLAGS) $(PKGS)

.PHONY: bench
bench: tools ## Run the benchmarks
	go test -run '^$$' -bench . -benchmem -timeout 90m $(PKGS)
