#!/usr/bin/env bash
# buf breaking against the protos of the previous main: the commit before HEAD
# (or BUF_BREAKING_AGAINST=<git ref>). Skipped, and says so, when that commit
# has no buf.yaml yet or the clone has no history.
set -euo pipefail
cd "$(dirname "$0")/.."
against="${BUF_BREAKING_AGAINST:-HEAD~1}"
if ! base=$(git rev-parse --verify --quiet "${against}^{commit}"); then
  echo "buf breaking: SKIPPED, no commit ${against} in this clone"
  exit 0
fi
if ! git cat-file -e "${base}:buf.yaml" 2>/dev/null; then
  echo "buf breaking: SKIPPED, ${against} ($(git rev-parse --short "$base")) has no protos yet"
  exit 0
fi
echo "buf breaking: against ${against} ($(git rev-parse --short "$base"))"
buf breaking --against ".git#ref=${base}"
