#!/usr/bin/env bash
# Search what the service printed and logged over a test run for its own secrets: admin and API
# tokens (kwa_), provisioning tokens (kwp_), enrolment and recovery tickets (kwt_, kwr_), one-time
# links (kwl_), session tokens (kws_) and console setup codes (kwsetup_), each a prefix and 43
# base64url characters. Prints one closing line, `secrets: N passed, M failed`, and the lines
# that gave a secret away. A run that logged nothing fails too: the search would prove nothing.
# Usage: tests/secrets/scan.sh LOG_DIR [MIN_LINES]
set -euo pipefail
dir="$1"
min="${2:-1000}"
pattern='kw(a|p|t|r|l|s|setup)_[A-Za-z0-9_-]{43}'
files=$(find "$dir" -type f -name '*.log' | wc -l)
lines=$(find "$dir" -type f -name '*.log' -exec cat {} + 2>/dev/null | wc -l)
echo "searched $lines lines the service wrote in $files runs for secrets"
if [ "$lines" -lt "$min" ]; then
  echo "fewer than $min lines: the service's output was not captured" >&2
  echo "secrets: 0 passed, 1 failed"
  exit 0
fi
if grep -rEn --include='*.log' "$pattern" "$dir" | head -20 | sed 's/^/LEAKED: /' | grep . ; then
  echo "secrets: 0 passed, 1 failed"
else
  echo "secrets: 1 passed, 0 failed"
fi
