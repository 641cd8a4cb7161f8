"""Hostile SMTP input gets a reply (or a 421), never a traceback (issue 20): a short seeded run
of the mutator (smtp_fuzzing.py) on port 25; fuzz/sessions.py runs it for longer."""

import fuzzing
import smtp_fuzzing
from conftest import Office


def test_a_seeded_run_of_mutated_commands_and_messages_raises_nothing(tmp_path):
    # Every fuzzing session is a new connection from 127.0.0.1.
    office = Office(str(tmp_path), extra="[limits]\nmax_connection_rate = 0\n").start()
    try:
        closed = smtp_fuzzing.run(office, commands=1500, seed=20)
        assert closed > 0     # the run reached the error limits, not only the happy paths
        assert fuzzing.tracebacks(office.appliance.lines) == []
    finally:
        office.appliance.stop()


def test_a_bdat_chunk_is_sent_as_the_server_reads_it():
    assert smtp_fuzzing.bdat_size(b"BDAT 12 LAST") == 12 and smtp_fuzzing.bdat_size(b"bdat 0012") == 12
    assert smtp_fuzzing.bdat_size(b"BDAT 12 FIRST") is None and smtp_fuzzing.bdat_size(b"BDAT\t12") is None
    assert smtp_fuzzing.message(fuzzing.generator(1)).count(b"\r\n.\r\n") == 0
