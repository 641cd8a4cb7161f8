"""What the admin finds in the log about a refused sender or recipient: one line with the
command as sent (so grep ADDRESS finds it) and the reply given."""

from rawsmtp import RawSMTP


def test_refused_recipients_and_senders_are_logged_with_the_address_and_the_reason(office):
    raw = RawSMTP(office.ports["smtp"])
    assert raw.command("EHLO client.remote.test")[0] == 250
    assert raw.command("MAIL FROM:<big@remote.test> SIZE=999999999999")[0] == 552
    assert raw.command("MAIL FROM:<bob@remote.test>")[0] == 250
    assert raw.command("RCPT TO:<nobody@example.test>")[0] == 550
    assert raw.command("RCPT TO:<someone@elsewhere.test>")[0] == 554
    assert raw.command("RCPT TO:<alice@example.test>")[0] == 250
    raw.close()
    log = office.appliance
    log.wait_for_log(r"smtp inbound session [0-9a-f]+ from 127\.0\.0\.1: MAIL FROM:<big@remote\.test> "
                     r"SIZE=999999999999 refused 552 5\.3\.4 Message size exceeds")
    log.wait_for_log(r": RCPT TO:<nobody@example\.test> refused 550 5\.1\.1 No such user here")
    log.wait_for_log(r": RCPT TO:<someone@elsewhere\.test> refused 554 5\.7\.1 Relay access denied")
    assert not [line for line in log.lines if "RCPT TO:<alice@example.test> refused" in line]


def test_the_transaction_line_says_which_mailboxes_got_the_message(office):
    client = office.smtp()
    client.sendmail("bob@remote.test", ["partners@example.test", "sales@example.test"], b"Subject: hi\r\n\r\nhi\r\n")
    client.quit()
    # partners -> alice and someone@remote.test; sales -> alice and bob: each mailbox once.
    line = office.appliance.wait_for_log(r"result=250 queued id=\S+ ")
    assert line.rstrip().endswith("mailboxes=<alice@example.test>,<bob@example.test> remote=<someone@remote.test>"), line
