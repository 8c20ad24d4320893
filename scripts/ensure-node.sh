#!/usr/bin/env bash
# Prints a PATH prefix that gives Node.js 24. When the machine's node is older, Node 24 is
# installed from the npm registry's `node` package into .tools/ (git-ignored); the system's
# node is never replaced. Use: export PATH="$(scripts/ensure-node.sh):$PATH"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$major" -ge 24 ]; then
  dirname "$(command -v node)"
  exit 0
fi
if [ ! -x "$tools/node_modules/.bin/node" ] || [ "$("$tools/node_modules/.bin/node" -p 'process.versions.node.split(".")[0]')" -lt 24 ]; then
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error node@24 >&2
fi
echo "$tools/node_modules/.bin"
