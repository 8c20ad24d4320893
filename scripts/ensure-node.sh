#!/usr/bin/env bash
# Prints a PATH prefix whose `node` satisfies package.json's `engines.node`. The machine's node is used whenever it
# does. Only when it does not (or there is none) is Node 24 installed from the npm registry's `node` package into
# .tools/ (git-ignored) and used from there; the system's node is never replaced.
# Use: export PATH="$(scripts/ensure-node.sh):$PATH"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"

# engines.node, read from package.json so the requirement is written down once. Without relying on any node:
# the first "node" key inside the "engines" object.
range="$(awk '/"engines"[[:space:]]*:/ { inside = 1 } inside && /"node"[[:space:]]*:/ { sub(/^[^:]*:[[:space:]]*"/, ""); sub(/".*/, ""); print; exit } inside && /}/ { inside = 0 }' "$root/package.json")"
if [ -z "$range" ]; then
  echo "ensure-node: no engines.node in $root/package.json" >&2
  exit 1
fi

# A version as one comparable number: 22.13.0 -> 22013000 (a pre-release tag is ignored).
num () {
  local v="${1#v}" major minor patch
  v="${v%%[-+]*}"
  IFS=. read -r major minor patch <<<"$v"
  echo $(( 10#${major:-0} * 1000000 + 10#${minor:-0} * 1000 + 10#${patch:-0} ))
}

# Does version $1 satisfy the range $2? The forms npm's engines use: comparators (>=, >, <=, <, =, ^, or a bare
# version) joined by spaces (all must hold) and alternatives joined by ||.
satisfies () {
  local v alt cmp want ok
  v="$(num "$1")"
  while IFS= read -r alt; do
    ok=1
    for cmp in $alt; do
      case "$cmp" in
        '>='*) want="$(num "${cmp#>=}")"; [ "$v" -ge "$want" ] || ok=0 ;;
        '<='*) want="$(num "${cmp#<=}")"; [ "$v" -le "$want" ] || ok=0 ;;
        '>'*) want="$(num "${cmp#>}")"; [ "$v" -gt "$want" ] || ok=0 ;;
        '<'*) want="$(num "${cmp#<}")"; [ "$v" -lt "$want" ] || ok=0 ;;
        '^'*) want="$(num "${cmp#^}")"
              [ "$v" -ge "$want" ] && [ $((v / 1000000)) -eq $((want / 1000000)) ] || ok=0 ;;
        '='*|[0-9]*) want="$(num "${cmp#=}")"; [ "$v" -eq "$want" ] || ok=0 ;;
        *) echo "ensure-node: cannot read engines.node \"$2\" (at \"$cmp\")" >&2; exit 1 ;;
      esac
    done
    [ "$ok" = 1 ] && return 0
  done < <(sed 's/[[:space:]]*||[[:space:]]*/\n/g' <<<"$2")
  return 1
}

version_of () { "$1" --version 2>/dev/null || echo v0.0.0; }

if command -v node >/dev/null && satisfies "$(version_of node)" "$range"; then
  dirname "$(command -v node)"
  exit 0
fi
local_node="$tools/node_modules/.bin/node"
if ! { [ -x "$local_node" ] && satisfies "$(version_of "$local_node")" "$range"; }; then
  echo "ensure-node: node $(version_of node) does not satisfy engines \"$range\"; installing Node 24 into .tools/" >&2
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error node@24 >&2
  if ! satisfies "$(version_of "$local_node")" "$range"; then
    echo "ensure-node: the installed node $(version_of "$local_node") does not satisfy engines \"$range\"" >&2
    exit 1
  fi
fi
echo "$tools/node_modules/.bin"
