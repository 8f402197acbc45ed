#!/usr/bin/env bash
# The libFuzzer targets of test/fuzz for a short budget (FUZZ_SECONDS, default 20);
# scripts/fuzz.sh runs them for longer.
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/fuzz.sh" "${FUZZ_SECONDS:-20}"
