"""Mail from local programs (cron, unattended-upgrades, PHP's mail()): the sendmail command drops
each message into the maildrop directory (entry.py), and the appliance picks it up and delivers it
(pickup.py), as Postfix's postdrop and pickup do.  The command works while the appliance is
stopped: what it dropped is delivered at the next start."""
