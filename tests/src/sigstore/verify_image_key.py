"""Verifies a key-based sigstore bundle signing an OCI image (cosign's image-signing statement).

Usage: python verify_image_key.py <bundle.json> <public-key.pem> <manifest sha256 hex>

The signature check is model_signing's own elliptic-curve key verifier (media type, key hint,
DSSE signature over the pre-authentication encoding); this script only reads the verified
statement. Prints "OK: ..." and exits 0, or prints "FAIL: ..." and exits 1.
"""

import json
import pathlib
import sys

from model_signing._signing import sign_ec_key, sign_sigstore_pb

IN_TOTO = "application/vnd.in-toto+json"
IMAGE_SIGNATURE = "https://sigstore.dev/cosign/sign/v1"


def fail(why: str) -> None:
    print(f"FAIL: {why}")
    sys.exit(1)


def main() -> None:
    bundle, key, want = sys.argv[1:4]
    try:
        signature = sign_sigstore_pb.Signature.read(pathlib.Path(bundle))
        verifier = sign_ec_key.Verifier(pathlib.Path(key))
        payload_type, payload = verifier._verify_signed_content(signature)
    except Exception as e:  # any refusal of the signature is a verification failure
        fail(f"signature: {type(e).__name__}: {e}")
    if payload_type != IN_TOTO:
        fail(f"payload type {payload_type!r}, expected {IN_TOTO!r}")
    statement = json.loads(payload)
    if statement.get("predicateType") != IMAGE_SIGNATURE:
        fail(f"predicate type {statement.get('predicateType')!r}")
    digests = [s.get("digest", {}).get("sha256") for s in statement.get("subject", [])]
    if want not in digests:
        fail(f"the statement signs {digests}, not sha256:{want}")
    print(f"OK: sha256:{want} is signed by the key")


if __name__ == "__main__":
    main()
