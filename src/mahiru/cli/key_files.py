"""The names of the files `mahiru certs` writes, which other commands read back.

Kept apart from `mahiru.cli.certs`, so that a command naming them in its help,
such as `mahiru register`, shows it without loading another command's module.
"""

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
REGISTRY_CERT = "registry.crt"
REGISTRY_KEY = "registry.key"
SITE_CERT = "site.crt"
SITE_KEY = "site.key"
PARTY_CLIENT_CERT = "party-client.crt"
PARTY_CLIENT_KEY = "party-client.key"
PARTY_KEY = "party.key"
PARTY_PUBLIC_KEY = "party.pub"
USER_CA_CERT = "user-ca.crt"
USER_CA_KEY = "user-ca.key"
