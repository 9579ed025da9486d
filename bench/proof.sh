#!/bin/sh
# The release proof on this machine: junction up in its own process with a
# fresh data directory, junction bench against it (closed loop, the p99
# search, short connections with and without session resumption), the
# books verified after it stops, then Junction against the baseline.
# Reports go to results/<date>/. Usage: bench/proof.sh [seconds per run]
set -eu
secs=${1:-15}
out=results/$(date -u +%Y-%m-%d)
work=$(mktemp -d)
trap 'kill $up 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$out"
go build -o "$work/junction" ./cmd/junction
cat > "$work/junction.yaml" <<YAML
pki_dir: $work/pki
data_dir: $work/data
http: 127.0.0.1:19583
YAML
"$work/junction" up -c "$work/junction.yaml" --log-level warn > "$out/up.log" 2>&1 &
up=$!
for i in $(seq 1 100); do
	"$work/junction" send -c "$work/junction.yaml" --channel pos --pan 6299901100000013 --type balance > /dev/null 2>&1 && break
	sleep 0.1
done
bench() { "$work/junction" bench -c "$work/junction.yaml" --duration "${secs}s" --conns 16 --in-flight 32 "$@"; }
echo "== closed loop, the default mix"; bench --out "$out/closed" | tail -3
echo "== closed loop, every kind"; bench --mix purchase=4,balance=1,preauth=1,refund=1,reversal=1,topup=1,payment=1,transfer=1 --out "$out/mixed" | tail -2
echo "== highest open-loop rate with p99 within 20ms"; bench --duration 5s --p99 20ms --out "$out/sustained" | tail -2
echo "== short connections, session resumption"; bench --channels kiosk --conns 0 --short-conns 8 --out "$out/short-resumed" | tail -2
echo "== short connections, full handshakes"; bench --channels kiosk --conns 0 --short-conns 8 --no-resume --out "$out/short-full" | tail -2
kill -INT $up; wait $up || true
echo "== ledger verify"; "$work/junction" ledger verify --data "$work/data" | tee "$out/verify.txt"
echo "== Junction against the baseline"
go test -run '^$' -bench VersusBaseline -benchtime 1x ./bench | tee "$out/versus-baseline.txt" | grep -E 'Benchmark|junction:|baseline:'
echo "reports in $out"
