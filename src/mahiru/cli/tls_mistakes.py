"""Mistakes in URLs and TLS files told apart from outages, for the CLI's connections.

A wrong certificate, key, CA or URL is a permanent mistake (exit 2), not an
outage (exit 4). What can be checked without the network is checked before
connecting: the URL's shape, the files, that the key belongs to the
certificate, and that the certificate is of the kind the API takes. What only
the server can tell is diagnosed when a connection fails: a server whose
certificate the CA does not vouch for, one that is not TLS, and one that
refuses this certificate during the handshake (which the HTTP client sees
only as a closed connection).
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from mahiru.cli.urls import Api, check_url
from mahiru.client.http import TlsIdentity
from mahiru.errors import InvalidInput, MahiruError
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.pki.files import load_certificate, read_file
from mahiru.pki.identity import is_ca, issued_by, peer_identity, user_ca_party, user_identity
from mahiru.pki.keys import CertifiedKey, check_key_matches, parse_tls_private_key

#: Seconds the diagnosis of a failed connection may take, per step.
DIAGNOSIS_TIMEOUT = 10.0


def checked_identity(url: str, cert: Path, key: Path, ca: Path, api: Api) -> TlsIdentity:
    """The TLS identity of the files, once the URL and the files are fit for `api`."""
    check_url(url, api)
    certificate = _certificate(cert, "--cert", other=key, other_option="--key")
    key_bytes = read_file(key)
    if b"CERTIFICATE-----" in key_bytes and b"PRIVATE KEY" not in key_bytes:
        raise InvalidInput(
            f"--key {key} holds a certificate, not a key: are --cert and --key swapped?"
        )
    private_key = parse_tls_private_key(key_bytes, source=str(key))
    try:
        check_key_matches(CertifiedKey(certificate, private_key), source=f"{cert} and {key}")
    except InvalidInput:
        raise InvalidInput(f"--key {key} is not the key of --cert {cert}") from None
    authority = _certificate(ca, "--ca")
    _check_ca(authority, ca)
    _check_kind(certificate, cert, authority, ca, api)
    return TlsIdentity(cert, key, ca)


def _certificate(
    path: Path, option: str, *, other: Path | None = None, other_option: str = ""
) -> x509.Certificate:
    data = read_file(path)
    if b"PRIVATE KEY" in data and b"CERTIFICATE-----" not in data:
        swapped = f": are {option} and {other_option} swapped?" if other is not None else ""
        raise InvalidInput(f"{option} {path} holds a private key, not a certificate{swapped}")
    return load_certificate(path)


def _check_ca(authority: x509.Certificate, path: Path) -> None:
    if not is_ca(authority):
        raise InvalidInput(
            f"--ca {path} is not a CA certificate: give the network CA (ca.crt) that issued"
            " the registry's and the sites' certificates"
        )


def _check_kind(
    certificate: x509.Certificate, cert: Path, authority: x509.Certificate, ca: Path, api: Api
) -> None:
    """InvalidInput unless `certificate` is of the kind `api` takes."""
    service = _service_identity(certificate)
    if api is Api.SITE:
        if service is not None:
            kind = "party-client" if service.startswith("party:") else "service"
            raise InvalidInput(
                f"--cert {cert} is the {kind} certificate of {service}; {api.value} takes a"
                " user certificate of the site's owner party (`mahiru certs user`)"
                + ("; party-client certificates are for the registry" if kind != "service" else "")
            )
        try:
            user_identity(certificate)
        except MahiruError as error:
            raise InvalidInput(f"--cert {cert}: {error.message}") from None
        if _is_user_ca(authority):
            raise InvalidInput(
                f"--ca {ca} is a party's user CA; --ca takes the network CA (ca.crt) that"
                " issued the sites' certificates"
            )
        return
    if service is None:
        raise InvalidInput(
            f"--cert {cert} is a user certificate; {api.value} takes your party's party-client"
            " certificate (`mahiru certs party-client`), issued by the network CA"
        )
    if not issued_by(certificate, authority):
        raise InvalidInput(
            f"--cert {cert} was not issued by the CA in --ca {ca}: a certificate of another"
            " network, or the CA of another network"
        )


def _service_identity(certificate: x509.Certificate | bytes) -> str | None:
    try:
        return peer_identity(certificate)
    except MahiruError:
        return None


def _is_user_ca(authority: x509.Certificate) -> bool:
    try:
        user_ca_party(authority)
    except MahiruError:
        return False
    return True


#: OpenSSL's reasons for an answer that is not TLS at all.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


class DiagnosingTransport(httpx.HTTPTransport):
    """An HTTPS transport that, when a connection fails, finds out whether it was a mistake.

    A mistake (see `diagnose`) is raised as InvalidInput; anything else stays
    the transport error it was, which the client reports as Unavailable.
    """

    def __init__(self, url: str, identity: TlsIdentity, api: Api) -> None:
        super().__init__(verify=identity.ssl_context())
        self._url = url
        self._identity = identity
        self._api = api

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
            mistake = diagnose(self._url, self._identity, self._api)
            if mistake is not None:
                raise mistake from None
            raise
        if self._api is Api.REGISTRY and response.status_code == 404:
            # A site takes a party-client certificate too, and knows none of the
            # registry's paths: its "Not Found" would hide the wrong URL.
            server = _answering_service(response)
            if server is not None and server != "registry":
                response.close()
                raise InvalidInput(
                    f"{self._url} is {server}, a site, not the registry: give the registry's"
                    " URL (a site's configuration names it, as registry_url)"
                )
        return response


def _answering_service(response: httpx.Response) -> str | None:
    """The service identity in the certificate of the server that sent `response`, if known."""
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    # httpcore's synchronous stream hands out the socket's inner SSL object, which is
    # not an ssl.SSLObject but has its getpeercert (positional arguments only).
    getpeercert = getattr(tls, "getpeercert", None)
    certificate = getpeercert(True) if callable(getpeercert) else None
    return _service_identity(certificate) if isinstance(certificate, bytes) else None


def diagnose(url: str, identity: TlsIdentity, api: Api) -> MahiruError | None:
    """Why a connection to `url` failed, if it is a mistake rather than an outage."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    where = f"{host}:{port}"
    try:
        raw = socket.create_connection((host, port), timeout=DIAGNOSIS_TIMEOUT)
    except OSError:
        return None  # nothing answers there: an outage (or a wrong port), exit 4
    with raw:
        try:
            tls = identity.ssl_context().wrap_socket(raw, server_hostname=host)
        except ssl.SSLCertVerificationError as error:
            return InvalidInput(
                f"the server at {where} has a certificate the CA in --ca {identity.ca} does not"
                f" vouch for ({error.verify_message}): give the network CA (ca.crt) of the"
                f" network {api.value} belongs to, or check the URL"
            )
        except ssl.SSLError as error:
            if error.reason in _NOT_TLS:
                return InvalidInput(f"{where} does not speak TLS: is it the right port?")
            return _refused(url, identity, api, None)
        except OSError:
            return None
        with tls:
            server = tls.getpeercert(binary_form=True)
            try:
                tls.sendall(
                    f"GET {parts.path.rstrip('/')}/ HTTP/1.1\r\nHost: {host}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                answered = bool(tls.recv(1))
            except (ssl.SSLError, ConnectionError):
                answered = False
            except OSError:
                return None
    if answered:
        return None  # the server works: the failure was passing
    return _refused(url, identity, api, server)


def _refused(url: str, identity: TlsIdentity, api: Api, server: bytes | None) -> MahiruError:
    """The error for a server that closed the connection on this certificate."""
    server_identity = None
    if server is not None:
        try:
            server_identity = peer_identity(server)
        except MahiruError:
            server_identity = None
    if api is Api.SITE and server_identity == "registry":
        return InvalidInput(
            f"{url} is the registry, not a site: give the site's internal API URL"
            " (`mahiru register show` lists them)"
        )
    if api is Api.REGISTRY and server_identity is not None and server_identity != "registry":
        return InvalidInput(f"{url} is {server_identity}, not the registry")
    if api is Api.SITE:
        user = user_identity(load_certificate(identity.cert))
        site = server_identity or "the site"
        namespace = SiteId.parse(server_identity).namespace if server_identity else None
        if namespace is not None and PartyId.parse(user.party).namespace != namespace:
            return InvalidInput(
                f"{site} refused your certificate: its internal API takes user certificates"
                f" of its owner party's user CA (namespace {namespace}), and yours is of"
                f" {user.party}; use a user certificate from the site's owner, or your own"
                " party's site"
            )
        return InvalidInput(
            f"{site} refused your certificate (user {user.name} of {user.party}): it was not"
            " issued by the user CA the site trusts for that party (a certificate of another"
            " network, or of a user CA the party has replaced)"
        )
    return InvalidInput(
        f"the registry at {url} refused your certificate: it takes party-client certificates"
        f" issued by its network CA, and --ca {identity.ca} may be another network's"
    )
