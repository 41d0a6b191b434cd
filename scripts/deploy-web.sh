#!/usr/bin/env bash
# Deploys the web client (web/) beside a deployed backend stack:
#   scripts/deploy-web.sh BACKEND_STACK [WEB_STACK] [AUTHORIZE_URL TOKEN_URL CLIENT_ID [SCOPE]]
# 1. `sam deploy` of web/deploy/template.yaml (S3 + CloudFront) as WEB_STACK;
# 2. config.json from the backend's outputs (ApiUrl, RealtimeUrl), whether AI replies
#    are on (its AiProvider), and the identity provider the console signs in with, by
#    authorization code with PKCE: its authorize and token endpoints and the console's
#    public client id (e.g. a Cognito user pool domain's /oauth2/authorize and
#    /oauth2/token, an app client without a secret whose callback URL is
#    <web URL>console.html; SCOPE defaults to "openid");
# 3. the files uploaded — never web/dev/ (local-only) nor web/tests/ — and the cache
#    invalidated.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/deploy-web.sh BACKEND_STACK [WEB_STACK] [AUTHORIZE_URL TOKEN_URL CLIENT_ID [SCOPE]]"
backend=${1:?$usage}
web_stack=${2:-$backend-web}
authorize_url=${3:-} token_url=${4:-} client_id=${5:-} scope=${6:-openid}
if [ -n "$authorize_url" ] && { [ -z "$token_url" ] || [ -z "$client_id" ]; }; then
  echo "$usage" >&2; exit 2
fi
scripts/ensure-tools.sh
.venv/bin/sam deploy --template-file web/deploy/template.yaml --stack-name "$web_stack" \
  --no-fail-on-empty-changeset --resolve-s3
.venv/bin/python - "$backend" "$web_stack" "$authorize_url" "$token_url" "$client_id" "$scope" <<'PY'
import json, mimetypes, pathlib, sys, time
import boto3

backend, web_stack, authorize_url, token_url, client_id, scope = sys.argv[1:7]
cfn = boto3.client("cloudformation")
def outputs(stack):
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}, described
api_out, api_stack = outputs(backend)
web_out, _ = outputs(web_stack)
params = {p["ParameterKey"]: p.get("ParameterValue") for p in api_stack.get("Parameters", [])}
config = {
    "api": api_out["ApiUrl"].rstrip("/"),
    "ws": api_out["RealtimeUrl"],
    "ai": params.get("AiProvider", "off") != "off",
    "local": False,
    "auth": {"authorize_url": authorize_url, "token_url": token_url,
             "client_id": client_id, "scope": scope} if authorize_url else None,
}
s3 = boto3.client("s3")
bucket = web_out["WebBucketName"]
root = pathlib.Path("web")
for path in sorted(root.rglob("*")):
    rel = path.relative_to(root).as_posix()
    if path.is_dir() or rel.startswith(("dev/", "tests/", "deploy/")) or rel.endswith(".md"):
        continue
    kind = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    s3.upload_file(str(path), bucket, rel, ExtraArgs={"ContentType": kind})
s3.put_object(Bucket=bucket, Key="config.json", Body=json.dumps(config).encode(),
              ContentType="application/json", CacheControl="no-cache")
boto3.client("cloudfront").create_invalidation(
    DistributionId=web_out["WebDistributionId"],
    InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time())},
)
print(f"web client: {web_out['WebUrl']}console.html  widget: {web_out['WebUrl']}widget.js")
PY
