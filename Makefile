# Junction — the two commands that matter: `make run` and `make test`.
GO       ?= go
BIN      := bin/junction
PKGS     := ./...
# Fuzz targets: package and name. `make test` runs each briefly, `make fuzz` longer.
FUZZ     := codec:FuzzUnpack codec:FuzzUnpackBinary codec:FuzzUnpack93 codec:FuzzScan codec:FuzzScanBinary codec:FuzzFrameReader codec:FuzzLoadSpec codec:FuzzConvert codec:FuzzLoadMap pki:FuzzParsePEM ledger:FuzzDecodeAccount ledger:FuzzDecodeTransfer routing:FuzzRules ledger/head:FuzzDecode ledger/remote:FuzzDecodePage ledger/recon:FuzzFiles
FUZZTIME ?= 60s
# The race detector needs cgo and a C compiler; without them the tests run without it.
RACE     ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

.PHONY: all build run test unit fuzz-brief fuzz bench proof lint vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/junction

# The all-in-one switch with demo data; creates ./var on first start.
run: build
	./$(BIN) up

# vet, the whole test suite, then every fuzz target for a few seconds.
test: vet unit fuzz-brief

vet:
	$(GO) vet $(PKGS)

unit:
	@[ -n "$(RACE)" ] || echo "note: no C compiler for the race detector; testing without -race"
	$(GO) test $(RACE) -count=1 -timeout 8m $(PKGS)

fuzz-brief:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=3s

fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz ./$$pkg $$name ($(FUZZTIME))"; \
		log=$$(mktemp); \
		if ! $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$$pkg > $$log 2>&1; then \
			if grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
				echo "  (ended by Go's fuzz-deadline race, golang/go#75804; no failing input)"; \
			else cat $$log; rm -f $$log; exit 1; fi; \
		fi; \
		rm -f $$log; \
	done

# Benchmarks beside the code (codec vs moov-io, routing, ledger), echo round
# trips per engine and connection count, then end to end over mutual TLS
# with durable commits.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./codec ./routing ./ledger ./switch
	$(GO) test -run '^$$' -bench Echo -benchtime 2s ./front
	$(GO) test -run '^$$' -bench EndToEnd -benchtime 20000x ./bench
	$(GO) test -run '^$$' -bench VersusBaseline -benchtime 1x ./bench

# The release proof: junction up in its own process driven by junction bench
# (closed loop, p99 search, short connections), ledger verify, and the
# baseline comparison; reports under results/<date>/. PROOFSECS per run.
PROOFSECS ?= 15
proof:
	bench/proof.sh $(PROOFSECS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin var
