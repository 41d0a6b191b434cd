#!/usr/bin/env bash
# Lints the SAM template with cfn-lint via `sam validate --lint` (no AWS access needed).
#   check-template.sh [TEMPLATE]   (default: template.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."

template=${1:-template.yaml}
[[ -x .venv/bin/sam ]] || { echo "check-template: .venv/bin/sam missing; run scripts/ensure-tools.sh" >&2; exit 1; }
[[ -f $template ]] || { echo "check-template: $template not found" >&2; exit 1; }

# sam insists on a region even for a local lint; telemetry off since the network is closed.
AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} SAM_CLI_TELEMETRY=0 \
  .venv/bin/sam validate --lint --template "$template"
