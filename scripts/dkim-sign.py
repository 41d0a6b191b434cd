"""DKIM keys and signatures for the inbound mail tests (dkimpy, in .venv).

  dkim-sign.py keygen KEY.pem          writes an RSA 2048 key, prints its TXT record
  dkim-sign.py sign KEY.pem DOMAIN SEL < mail > signed mail
"""

import base64
import sys

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def keygen(path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    print("v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode())


def sign(path, domain, selector):
    message = sys.stdin.buffer.read()
    with open(path, "rb") as f:
        key = f.read()
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    sys.stdout.buffer.write(signature + message)


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    else:
        sign(sys.argv[2], sys.argv[3], sys.argv[4])
