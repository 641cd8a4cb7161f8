"""The HTTPS and HTTP listeners (twisted.web, in the one reactor): the documents mail clients
configure themselves from, the MTA-STS policy, and the redirect of plain HTTP to HTTPS."""
