#!/usr/bin/env python3
"""Mint the LOCAL-ONLY HS256 tokens used by the fixtures in events/.

The tokens are signed with the local development secret and carry fixed `iat`/`exp`
(exp = 2100-01-01), so minting is deterministic and the fixture files never go
stale. Only a stack running with CHAT_LOCAL=1 accepts this secret; a deployed stack
refuses it.

    scripts/mint_fixture_token.py u-100 customer         # prints the token
    scripts/mint_fixture_token.py 5 agent --org acme
    scripts/mint_fixture_token.py --refresh events/*.json
        # re-mints the bearer token of each event file, keeping its sub/org/role

Standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

SECRET = "local-dev-secret-change-me"
ISSUER = "chat-local"
AUDIENCE = "chat-api"
ORG = "acme"
IAT = 1767225600  # 2026-01-01T00:00:00Z
EXP = 4102444800  # 2100-01-01T00:00:00Z


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def mint(sub: str, role: str, org: str = ORG, secret: str = SECRET) -> str:
    """An HS256 JWT for `sub` with the fixtures' fixed claims."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": sub,
        "org": org,
        "role": role,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": IAT,
        "exp": EXP,
    }
    signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}"
    signature = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def claims_of(token: str) -> dict:
    """The (unverified) claims of a token."""
    return json.loads(_b64url_decode(token.split(".")[1]))


def refresh(path: Path) -> bool:
    """Re-mints the bearer token of one event file; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    event = json.loads(text)
    headers = event.get("headers") or {}
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        return False
    old = claims_of(auth[len("Bearer "):])
    headers["authorization"] = "Bearer " + mint(old["sub"], old["role"], old.get("org", ORG))
    new_text = json.dumps(event, indent=2) + "\n"
    if new_text == text:
        return False
    path.write_text(new_text, encoding="utf-8")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sub", nargs="?", help="user id (sub claim), e.g. u-100")
    parser.add_argument("role", nargs="?", choices=["customer", "agent", "admin"], help="role claim")
    parser.add_argument("--org", default=ORG, help=f"tenant (org claim), default {ORG}")
    parser.add_argument("--refresh", nargs="+", metavar="EVENT", help="re-mint the tokens of these event files")
    args = parser.parse_args(argv)

    if args.refresh:
        for name in args.refresh:
            if refresh(Path(name)):
                print(f"updated {name}", file=sys.stderr)
        return 0
    if not args.sub or not args.role:
        parser.error("give SUB and ROLE, or --refresh FILES")
    print(mint(args.sub, args.role, args.org))
    return 0


if __name__ == "__main__":
    sys.exit(main())
