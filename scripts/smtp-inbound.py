"""The local stack's inbound mail: what Amazon SES email receiving does, on loopback.

An SMTP server (aiosmtpd) that accepts mail for INBOUND_EMAIL_DOMAIN only (other
recipients: 550), checks each mail as SES's receipt does (SPF with pyspf, DKIM with
dkimpy, DMARC alignment of the From domain, the EICAR virus test file, the GTUBE spam
test string), stores the raw message in the local S3 under `inbound/{SES message id}`
(SigV4-signed PutObject, as SES's S3 action writes it) and invokes the inbound-email
function through the Lambda Invoke API with SES's receipt event. DNS is a local zone
file (MAIL_DNS_FILE, JSON: {"name": ["TXT record", ...]}) read on every mail, so a
test can publish a DKIM key or an SPF/DMARC record; nothing resolves outside it.

Unlike SES, which answers the client and then invokes the function asynchronously,
it invokes the function first and puts its answer in the 250 reply, so a client sees
what became of its mail (the function's reply is the same JSON either way).

Run: .venv/bin/python scripts/smtp-inbound.py --port 2525 (make dev starts it).
"""

import argparse
import asyncio
import email.utils
import json
import os
import secrets
import string
import sys
import time
from datetime import datetime, timezone

import boto3
import dkim
import spf
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# SES receives mail of up to 40 MB.
MAX_BYTES = 40 * 1024 * 1024


def zone():
    path = os.environ.get("MAIL_DNS_FILE")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        records = json.load(f)
    return {name.lower().rstrip("."): values for name, values in records.items()}


def txt(name):
    return zone().get(name.lower().rstrip("."), [])


def spf_lookup(name, qtype, *args, **kwargs):
    """pyspf's DNS, from the local zone (TXT only: SPF's ip4/ip6 mechanisms)."""
    if qtype not in ("TXT", "SPF"):
        return []
    return [((name, qtype), [value.encode()]) for value in txt(name)]


spf.DNSLookup = spf_lookup


def dkim_lookup(name, timeout=5):
    values = txt(name.decode() if isinstance(name, bytes) else name)
    return values[0].encode() if values else None


def domain_of(address):
    return address.rpartition("@")[2].lower()


def aligned(a, b):
    a, b = a.lower(), b.lower()
    return bool(a) and bool(b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


def dmarc_record(domain):
    labels = domain.split(".")
    # The From domain's own record, else its parent's (the organizational domain).
    for candidate in (domain, ".".join(labels[-2:])):
        for value in txt("_dmarc." + candidate):
            if value.lower().startswith("v=dmarc1"):
                return dict(
                    part.strip().split("=", 1)
                    for part in value.split(";")
                    if "=" in part
                )
    return None


def verdicts(data, peer_ip, mail_from, helo):
    """SES's receipt verdicts for one mail, and its DMARC policy."""
    result, _ = spf.check2(i=peer_ip, s=mail_from or "", h=helo or "localhost")[:2]
    spf_status = {
        "pass": "PASS",
        "fail": "FAIL",
        "permerror": "PROCESSING_FAILED",
        "temperror": "PROCESSING_FAILED",
    }.get(result, "GRAY")
    dkim_status, dkim_domain = "GRAY", None
    if b"\ndkim-signature:" in b"\n" + data.lower():
        try:
            verified = dkim.verify(data, dnsfunc=dkim_lookup)
        except dkim.DKIMException:
            verified = False
        dkim_status = "PASS" if verified else "FAIL"
        if verified:
            signature = dkim.DKIM(data)
            sig, _, _ = signature.verify_headerprep(0)
            dkim_domain = sig[b"d"].decode().lower()
    message = email.message_from_bytes(data)
    from_domain = domain_of(email.utils.parseaddr(message.get("From", ""))[1])
    record = dmarc_record(from_domain) if from_domain else None
    policy = None
    if record is None:
        dmarc_status = "GRAY"
    elif (spf_status == "PASS" and aligned(domain_of(mail_from or ""), from_domain)) or (
        dkim_status == "PASS" and aligned(dkim_domain or "", from_domain)
    ):
        dmarc_status = "PASS"
    else:
        dmarc_status = "FAIL"
        policy = record.get("p", "none").upper()
    return {
        "spamVerdict": {"status": "FAIL" if GTUBE in data else "PASS"},
        "virusVerdict": {"status": "FAIL" if EICAR in data else "PASS"},
        "spfVerdict": {"status": spf_status},
        "dkimVerdict": {"status": dkim_status},
        "dmarcVerdict": {"status": dmarc_status},
        **({"dmarcPolicy": policy} if policy else {}),
    }


def ses_message_id():
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


class Inbound:
    def __init__(self, domain, bucket, s3, lam, function):
        self.domain, self.bucket, self.s3, self.lam, self.function = (
            domain,
            bucket,
            s3,
            lam,
            function,
        )

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if domain_of(address) != self.domain:
            return "550 5.1.1 Recipient address rejected: not a domain of this stack"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        started = time.monotonic()
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        if len(data) > MAX_BYTES:
            return "552 5.3.4 Message too big"
        peer_ip = session.peer[0] if session.peer else "127.0.0.1"
        receipt = verdicts(data, peer_ip, envelope.mail_from, session.host_name)
        message_id = ses_message_id()
        self.s3.put_object(
            Bucket=self.bucket, Key=f"inbound/{message_id}", Body=data
        )
        parsed = email.message_from_bytes(data)
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        headers = [{"name": k, "value": str(v)} for k, v in parsed.items()]
        event = {
            "Records": [
                {
                    "eventSource": "aws:ses",
                    "eventVersion": "1.0",
                    "ses": {
                        "mail": {
                            "timestamp": now,
                            "source": envelope.mail_from or "",
                            "messageId": message_id,
                            "destination": envelope.rcpt_tos,
                            "headersTruncated": False,
                            "headers": headers,
                            "commonHeaders": {
                                "returnPath": envelope.mail_from or "",
                                "from": parsed.get_all("From", []),
                                "to": parsed.get_all("To", []),
                                "messageId": parsed.get("Message-ID", ""),
                                "subject": parsed.get("Subject", ""),
                            },
                        },
                        "receipt": {
                            "timestamp": now,
                            "processingTimeMillis": int((time.monotonic() - started) * 1000),
                            "recipients": envelope.rcpt_tos,
                            **receipt,
                            "action": {
                                "type": "Lambda",
                                "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{self.function}",
                                "invocationType": "Event",
                            },
                        },
                    },
                }
            ]
        }
        answer = await asyncio.to_thread(
            self.lam.invoke,
            FunctionName=self.function,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = answer["Payload"].read().decode()
        if answer.get("FunctionError"):
            print(f"inbound-email failed: {payload}", file=sys.stderr, flush=True)
            return "451 4.3.0 The function failed; try again later"
        print(f"inbound {message_id}: {payload}", flush=True)
        return "250 2.0.0 Ok: " + " ".join(payload.split())[:400]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--function", default="InboundEmailFunction")
    args = parser.parse_args()
    region = os.environ.get("AWS_REGION", "us-east-1")
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=region,
        config=boto3.session.Config(s3={"addressing_style": "path"}),
    )
    lam = boto3.client(
        "lambda",
        endpoint_url=os.environ["LAMBDA_ENDPOINT"],
        region_name=region,
        config=boto3.session.Config(retries={"max_attempts": 1}, read_timeout=60),
    )
    handler = Inbound(
        os.environ["INBOUND_EMAIL_DOMAIN"].lower(),
        os.environ["UPLOADS_BUCKET"],
        s3,
        lam,
        args.function,
    )

    class Server(Controller):
        def factory(self):
            return SMTP(self.handler, data_size_limit=MAX_BYTES, decode_data=False)

    controller = Server(handler, hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"SMTP (inbound mail for {handler.domain}) on 127.0.0.1:{args.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()


if __name__ == "__main__":
    main()
