"""What checking owner signatures costs: CPU seconds to verify 10,000 records (aim: under 1 s on
one core), against the bare Ed25519 verifications alone in the same run.

Records of one owner, signed with its key, as a manifest page or a push delivers them (entries
with `sig`). Everything runs on this one thread, so CPU seconds (`time.process_time`) are what
one core spends: parsing each entry, building the signed message, verifying, remembering it.
`bare` is OpenSSL's verification alone over the same messages (the floor); `again` is the same
records a second time (a record relayed again is not verified again). Runs alternate and the
median of each is reported; CPU seconds move less with other load on the machine than wall
time, but on a shared machine both vary. Prints JSON.

    python3 bench/verify_bench.py [--records 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from overlay.certificates import key_hex  # noqa: E402
from sync.manifest import FileRecord, entry_to_record, record_to_entry  # noqa: E402
from sync.signing import Verifier, record_message, sign_records  # noqa: E402


def entries(count: int, key: Ed25519PrivateKey) -> list[dict[str, object]]:
    """`count` signed records of the owner "alice", paths and sizes like a real folder's."""
    records = [
        FileRecord("alice", f"photos/2024/img_{i:05d}.jpg", 1000 + i, i, "ab" * 32, i + 1, False)
        for i in range(count)
    ]
    return [record_to_entry(rec, True) for rec in sign_records(records, key.sign)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    page = entries(args.records, key)
    keys: dict[str, str | None] = {"alice": key_hex(public)}
    signed = [(rec.sig, record_message(rec)) for rec, _held in map(entry_to_record, page)]
    first, again, bare = [], [], []
    for _ in range(args.runs):
        verifier = Verifier(keys.get)
        cpu = time.process_time()
        kept = verifier.check_now(page, keys)
        first.append(time.process_time() - cpu)
        cpu = time.process_time()
        verifier.check_now(page, keys)
        again.append(time.process_time() - cpu)
        assert len(kept) == args.records and verifier.checked == args.records
        cpu = time.process_time()
        for sig, message in signed:
            public.verify(sig, message)
        bare.append(time.process_time() - cpu)
    median = statistics.median
    print(json.dumps({
        "records": args.records,
        "runs": args.runs,
        "verify_cpu_s": round(median(first), 3),
        "verify_us_per_record": round(median(first) / args.records * 1e6, 1),
        "again_cpu_s": round(median(again), 3),
        "bare_ed25519_cpu_s": round(median(bare), 3),
        "bare_us_per_signature": round(median(bare) / args.records * 1e6, 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
