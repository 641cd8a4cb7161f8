"""Load and save a 100,000-entry dovecot-uidlist; prints the median of several runs.

    python benchmarks/uidlist_scale.py [ENTRIES] [RUNS]
"""

import statistics
import sys
import tempfile
import time

from mailbox_appliance.maildir.uidlist import UidList


def main():
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    with tempfile.TemporaryDirectory() as folder:
        uidlist = UidList.load(folder)
        uidlist.assign(["%d.M%dP1234Q%dR0123456789abcdef.mail.example.com,S=%d,W=%d"
                        % (1700000000 + i, i % 1000000, i, 2000 + i, 2050 + i) for i in range(entries)])
        uidlist.save()
        loads, saves = [], []
        for _ in range(runs):
            started = time.perf_counter()
            loaded = UidList.load(folder)
            loaded_at = time.perf_counter()
            loaded.save()
            loads.append(loaded_at - started)
            saves.append(time.perf_counter() - loaded_at)
    print(f"uidlist {entries} entries, median of {runs}: load {statistics.median(loads) * 1e3:.0f} ms, "
          f"save (with fsync) {statistics.median(saves) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
