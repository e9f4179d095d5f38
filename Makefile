# Missive's everyday commands. The quick start is `make run` and `make test`.
.PHONY: run test bench lint fmt build stop clean help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

run: ## Run Missive with a local Postgres (.missive/) and the capture relay
	@scripts/run.sh

test: ## Run the whole test suite against a throwaway Postgres
	@scripts/test.sh

bench: ## Benchmarks (REST, SMTP beside Postfix, memory, criterion); rewrites docs/benchmarks.md
	@bench/run.sh

lint: ## Formatting and clippy checks, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	cargo fmt --all

build: ## Release build of the missive binary
	cargo build --release --bin missive

stop: ## Stop the local Postgres started by make run
	@scripts/pg.sh stop .missive/pg

clean: stop ## Remove build output and local state (.missive/)
	cargo clean
	@scripts/pg.sh destroy .missive/pg
	rm -rf .missive
