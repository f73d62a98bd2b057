"""Create the deployment's shared keys once (the ``keys`` init service of docker-compose).

* ``signing-key.pem`` — the EC P-256 key every worker signs kill signals with (one ``kid``,
  one JWKS, whichever worker published the signal);
* ``redaction.key`` — the HMAC key of redaction fingerprints (the same secret gets the same
  fingerprint on every worker).

Existing files are kept, so restarting the service changes nothing.
Usage: ``python init_keys.py /keys``
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def _write(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def main(directory: str) -> None:
    from joserfc.jwk import ECKey

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pem = ECKey.generate_key("P-256", private=True).as_pem(private=True)
    made = [
        name
        for name, data in (
            ("signing-key.pem", pem),
            ("redaction.key", secrets.token_hex(32).encode()),
        )
        if _write(d / name, data)
    ]
    print("created: " + (", ".join(made) if made else "nothing (keys exist)"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/keys")
