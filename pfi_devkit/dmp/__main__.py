"""``python -m pfi_devkit.dmp``: the fake DMP alone, in the foreground (``bench/bench_dmp.py``).

Prints ``describe()`` as one JSON line once listening; stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from pfi_devkit.dmp.constants import HOST
from pfi_devkit.dmp.endpoint import DmpEndpoint


def main(argv: list[str] | None = None) -> None:
    """``python -m pfi_devkit.dmp``: run the endpoint in the foreground (the demo).

    Prints ``describe()`` as one JSON line once listening; stops on SIGTERM or Ctrl-C.
    """
    parser = argparse.ArgumentParser(
        prog="python -m pfi_devkit.dmp", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--cert", type=Path, required=True, help="server cert chain (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="server key (PEM)")
    parser.add_argument("--ca", type=Path, required=True, help="CA bundle for client certs")
    parser.add_argument("--crl", type=Path, help="CRL bundle (every CA of the chain)")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--store-dir", type=Path)
    parser.add_argument("--verify-vihf", action="store_true")
    parser.add_argument("--require-signature-document", action="store_true")
    parser.add_argument("--strict-metadata", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    @dataclass(frozen=True)
    class _Cred:
        cert_path: Path
        key_path: Path

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    endpoint = DmpEndpoint(
        _Cred(args.cert, args.key),
        args.ca,
        crl_bundle=args.crl,
        host=args.host,
        port=args.port,
        store_dir=args.store_dir,
        verify_vihf=args.verify_vihf,
        require_signature_document=args.require_signature_document,
        strict_metadata=args.strict_metadata,
        verbose=args.verbose,
    )
    with endpoint:
        print(json.dumps(endpoint.describe()), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
