# terraform-provider-resin
#   make demo     the main job: build, build the fixture packages from Debian packages into
#                 a local OCI layout, terraform apply examples/demo, boot it under QEMU
#   make test     install what the tests need, check formatting, build with clippy's lints
#                 (the provider, its tests, benchmarks, examples and fuzz targets), run every test with
#                 cargo nextest (the acceptance tests on the pinned Terraform 1.0.3; the
#                 protocol tests again on a newer terraform on PATH), print the slowest, and
#                 fuzz each target briefly
#   make install  build a release binary into Terraform's filesystem mirror
#   make fuzz     fuzz the layer reader, the union, the newc writer, the PE appender and
#                 the deflate continuation
#                 (FUZZ_SECONDS each)
#   make bench    benchmarks: resolve+pull (cold and warm cache), assembly (realistic image,
#                 memory at 10 MiB and 1 GiB, terraform plan with a warm cache), and whole
#                 terraform applies of a LinuxKit-shaped image against a loopback registry
#                 (cold, warm, one package changed, 200k files, two CI runners sharing a segment
#                 cache in a registry) beside zcat/gzip/pigz/zstd floors,
#                 what signing a UKI for Secure Boot costs, and what each boot format costs
#                 beside gzip -6 of the UKI
#   make docs     regenerate docs/ from the provider schema and the examples

VERSION      := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
TERRAFORM    := $(CURDIR)/.tools/bin/terraform
DEMO_DIR     := $(CURDIR)/target/demo
MIRROR       ?= $(HOME)/.terraform.d/plugins

export CHECKPOINT_DISABLE := 1

FUZZ_SECONDS ?= 60

# The fuzz targets' instrumented build starts once the tests are built, at the lowest
# priority (it takes what the first test pass leaves idle), and the targets run while the
# newer Terraform's protocol tests run: those mostly wait on Terraform (measured: about
# half of 2 cores busy). `scripts/fuzz.sh 10` waits for the build (cargo's lock).
# Tests run two per core: most of an acceptance test's time is spent waiting (Terraform
# starting, registries, retry back-off, firmware), so this is about 30 % faster than one
# per core on 2 cores; each test's time printed includes the contention.
TEST_THREADS ?= $(shell echo $$(( $$(nproc) * 2 )))

.PHONY: build demo test bench fuzz install docs clean

build:
	scripts/install-deps.sh build
	cargo build

demo:
	scripts/install-deps.sh demo
	cargo build
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	cp examples/demo/main.tf $(DEMO_DIR)/
	scripts/boot-fixtures/build.sh $(DEMO_DIR)/layout
	printf 'provider_installation {\n  dev_overrides {\n    "resinstack/resin" = "%s"\n  }\n  direct {}\n}\n' "$(CURDIR)/target/debug" > $(DEMO_DIR)/terraformrc
	cd $(DEMO_DIR) && TF_CLI_CONFIG_FILE=$(DEMO_DIR)/terraformrc $(TERRAFORM) apply -auto-approve -input=false
	cd $(DEMO_DIR) && TF_CLI_CONFIG_FILE=$(DEMO_DIR)/terraformrc $(TERRAFORM) plan -detailed-exitcode -input=false
	scripts/boot-demo.sh $(DEMO_DIR)/out
	@echo
	@echo "Artifacts: $(DEMO_DIR)/out/demo-kernel, demo-initrd.img, demo-cmdline, and the UKI demo.efi"
	@echo "State: $(DEMO_DIR)/terraform.tfstate; blob cache: $(DEMO_DIR)/cache"

# make test lints while it builds: clippy-driver wraps rustc for the workspace's own crates
# (as `cargo clippy` does for its check), with warnings as errors, so the dependencies are
# compiled once, for the tests, not a second time for a separate check (2.5 minutes from a
# fresh clone on 2 cores). A plain `cargo build` afterwards compiles the workspace's crates
# again, not the dependencies.
test: export RUSTC_WORKSPACE_WRAPPER := $(shell rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
test: export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

test:
	scripts/install-deps.sh test
	cargo fmt --check
	@[ -x "$$RUSTC_WORKSPACE_WRAPPER" ] || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
	cargo build --workspace --all-targets
	@setsid nice -n 19 scripts/fuzz.sh build > target/fuzz-build.log 2>&1 < /dev/null & echo $$! > target/fuzz-build.pid
	scripts/boot-fixtures/build.sh $(CURDIR)/.tools/boot-layout
	@cargo nextest run --no-fail-fast --test-threads $(TEST_THREADS); status=$$?; \
	scripts/test-times.py target/nextest/default/junit.xml 15; \
	[ $$status -eq 0 ] || kill -- -$$(cat target/fuzz-build.pid) 2>/dev/null; exit $$status
	@echo "acceptance tests passed on $$($(TERRAFORM) version -json 2>/dev/null | python3 -c 'import json, sys; print("Terraform " + json.load(sys.stdin)["terraform_version"])') ($(TERRAFORM))"
	@scripts/fuzz.sh 10 > target/fuzz.log 2>&1 & fuzz=$$!; \
	newer=$$(scripts/newer-terraform.sh); status=0; \
	if [ -n "$$newer" ]; then \
	  echo "running the protocol tests again on the newer Terraform on PATH ($$newer), fuzzing meanwhile"; \
	  RESIN_TERRAFORM=$$newer cargo nextest run --profile newer-terraform --no-fail-fast --test-threads $(TEST_THREADS) && \
	  scripts/test-times.py target/nextest/newer-terraform/junit.xml 5 && \
	  echo "protocol tests passed on $$($$newer version -json 2>/dev/null | python3 -c 'import json, sys; print("Terraform " + json.load(sys.stdin)["terraform_version"])') ($$newer)" || status=1; \
	else \
	  echo "no newer terraform on PATH: the acceptance tests ran on the pinned Terraform only"; \
	fi; \
	wait $$fuzz; fuzzed=$$?; cat target/fuzz.log; \
	[ $$fuzzed -eq 0 ] || { echo "fuzzing failed (target/fuzz.log)" >&2; exit 1; }; \
	exit $$status

# Fuzzing (libFuzzer through libfuzzer-sys, stable toolchain): each target for FUZZ_SECONDS.
fuzz:
	scripts/install-deps.sh test
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Benchmarks (release build); prints timings, peak RSS and throughput.
bench:
	scripts/install-deps.sh test
	cargo bench --bench pull
	cargo bench --bench assemble
	cargo bench --bench linuxkit
	cargo bench --bench signing
	cargo bench --bench disk

# Regenerates docs/ from the provider schema and the examples (a test checks they are current).
docs:
	scripts/install-deps.sh demo
	cargo build
	rm -rf target/docs && mkdir -p target/docs
	printf 'terraform {\n  required_providers {\n    resin = { source = "resinstack/resin" }\n  }\n}\n' > target/docs/main.tf
	printf 'provider_installation {\n  dev_overrides {\n    "resinstack/resin" = "%s"\n  }\n  direct {}\n}\n' "$(CURDIR)/target/debug" > target/docs/terraformrc
	cd target/docs && TF_CLI_CONFIG_FILE=$(CURDIR)/target/docs/terraformrc $(TERRAFORM) providers schema -json > schema.json
	python3 scripts/gen-docs.py target/docs/schema.json

install:
	scripts/install-deps.sh build
	cargo build --release
	scripts/install-mirror.sh target/release/terraform-provider-resin $(MIRROR) $(VERSION)
	@echo "terraform init now finds resinstack/resin $(VERSION) in $(MIRROR)."

clean:
	cargo clean
	rm -rf .tools
