"""ManageSieve (RFC 5804): users' mail clients list, upload, check and activate their Sieve
scripts over the ``managesieve`` listener (port 4190)."""
