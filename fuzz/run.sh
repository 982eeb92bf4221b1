#!/usr/bin/env bash
# Builds the fuzz targets as `cargo fuzz build -s none` would, on the stable
# toolchain (coverage instrumentation needs no nightly; only sanitizers would,
# and the code they would check is safe Rust), then runs each target for a
# bounded time against its committed corpus.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]     # default: 30 s, every target
#
# New inputs that reach new code go to fuzz/corpus/<target>/; a crash is
# written to fuzz/artifacts/<target>/ and fails the run. Minimise a grown
# corpus before committing it:
#   fuzz/target/<host triple>/release/<t> -merge=1 fuzz/corpus/<t>.min fuzz/corpus/<t>
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(token_request vtoken config header_rules sim_token)
fi

export RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts, which must not be
# instrumented (they link without libFuzzer), as cargo fuzz does.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$triple"

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  # -rss_limit_mb: a leak or blow-up fails the run instead of the machine.
  "target/$triple/release/$t" "corpus/$t" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=8192 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 |
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|thread|panicked)' || true
  # grep hides libFuzzer's progress lines; a crash leaves an artifact.
  if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/oom-*" >/dev/null ||
     compgen -G "artifacts/$t/timeout-*" >/dev/null; then
    echo "fuzz target $t found a failing input: fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
