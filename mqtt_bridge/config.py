"""Broker URL parsing: ``mqtt://host:port`` and ``mqtts://user:pass@host:port``.

One place turns the user's ``--broker`` string into connection settings, so the
bridge, the watch view and the CLI agree on defaults and on error messages.
The password never appears in an error message or in ``repr``.
"""

import os
import re
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import BrokerUrlError

DEFAULT_PORT_PLAIN = 1883
DEFAULT_PORT_TLS = 8883
DEFAULT_BROKER_URL = "mqtt://127.0.0.1:1883"
# Read when the URL names a user but no password, so secrets need not sit in
# the process list or shell history.
PASSWORD_ENV = "BMS_TWIN_MQTT_PASSWORD"

_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}
# Query parameters we understand; anything else is a typo worth reporting.
_QUERY_KEYS = ("protocol", "ca")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,15}$")
_PROTOCOLS = {"5": 5, "v5": 5, "mqttv5": 5, "3.1.1": 4, "4": 4, "v311": 4, "mqttv311": 4}


class BrokerConfig:
    """Where and how to connect. ``protocol`` is 5 (MQTT 5) or 4 (MQTT 3.1.1)."""

    def __init__(self, host: str, port: int, tls: bool = False, username: str | None = None,
                 password: str | None = None, protocol: int = 5, tls_ca: str | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.protocol = protocol
        self.tls_ca = tls_ca

    def url(self, password_as: str | None = "***", with_query: bool = True) -> str:
        """The URL with the password shown as ``password_as`` (None: no password part at all)."""
        scheme = "mqtts" if self.tls else "mqtt"
        auth = ""
        if self.username is not None:
            auth = self.username
            if self.password is not None and password_as is not None:
                auth += ":" + password_as
            auth += "@"
        host = "[%s]" % self.host if ":" in self.host else self.host
        query = "" if self.protocol == 5 or not with_query else "?protocol=3.1.1"
        return "%s://%s%s:%d%s" % (scheme, auth, host, self.port, query)

    def __repr__(self) -> str:
        return "BrokerConfig(%s)" % self.url()


def parse_broker_url(url: str, protocol: int | str | None = None) -> BrokerConfig:
    """Parse ``mqtt[s]://[user[:pass]@]host[:port][?protocol=5|3.1.1][&ca=/path]``.

    ``protocol`` given here overrides the URL's query. Raises BrokerUrlError naming
    the bad part (scheme, host, port, path, query, protocol).

    The user part runs from ``://`` to the *last* ``@``, so a password may hold any
    character, even an unescaped ``/``, ``?``, ``#`` or ``@``, and the rest is parsed
    on its own: no error message can quote a piece of the password. (An ``@`` in a
    ``?ca=`` path must be written ``%40``.)
    """
    if not isinstance(url, str) or not url.strip():
        raise BrokerUrlError("url", url if not isinstance(url, str) else "", "expected e.g. mqtt://127.0.0.1:1883")
    text = url.strip()
    if "://" not in text:
        shown = _shown(*_split_userinfo(text))
        raise BrokerUrlError("scheme", shown, "missing; write mqtt://%s or mqtts://%s" % (shown, shown))
    scheme_text, rest = text.split("://", 1)
    scheme = scheme_text.lower()
    if scheme not in _SCHEMES:
        readable = scheme_text if _SCHEME_RE.match(scheme_text) else "(not a scheme)"
        raise BrokerUrlError("scheme", readable, "use mqtt:// (plain) or mqtts:// (TLS)")
    tls = _SCHEMES[scheme]
    userinfo, address = _split_userinfo(rest)
    parts = urlsplit(scheme + "://" + address)
    host = parts.hostname
    if not host:
        raise BrokerUrlError("host", _shown(userinfo, address), "no host name")
    try:
        port = parts.port
    except ValueError:
        raise BrokerUrlError("port", parts.netloc.rsplit(":", 1)[-1], "must be an integer 1..65535") from None
    if port is None:
        port = DEFAULT_PORT_TLS if tls else DEFAULT_PORT_PLAIN
    if not 1 <= port <= 65535:
        raise BrokerUrlError("port", port, "must be 1..65535")
    if parts.path not in ("", "/"):
        raise BrokerUrlError("path", parts.path, "an MQTT broker URL has no path")
    if parts.fragment:
        raise BrokerUrlError("fragment", parts.fragment, "an MQTT broker URL has no fragment")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    for key in query:
        if key not in _QUERY_KEYS:
            raise BrokerUrlError("query", key, "known parameters: %s" % ", ".join(_QUERY_KEYS))
    username = password = None
    if userinfo is not None:
        user_text, has_password, password_text = userinfo.partition(":")
        username = unquote(user_text)
        password = unquote(password_text) if has_password else None
    if username == "":
        raise BrokerUrlError("username", "", "empty user name before '@'")
    if username is not None and password is None:
        password = os.environ.get(PASSWORD_ENV)
    chosen = protocol if protocol is not None else query.get("protocol", ["5"])[-1]
    tls_ca = query.get("ca", [None])[-1] or None
    return BrokerConfig(host, port, tls=tls, username=username, password=password,
                        protocol=normalise_protocol(chosen), tls_ca=tls_ca)


def _split_userinfo(rest: str) -> tuple:
    """(``user[:pass]`` or None, the address after it): everything up to the last ``@``."""
    at = rest.rfind("@")
    if at < 0:
        return None, rest
    return rest[:at], rest[at + 1:]


def _shown(userinfo: str | None, address: str) -> str:
    """The URL's text as an error may quote it: the user name kept, a password as ***."""
    if userinfo is None:
        return address
    user, has_password, _secret = userinfo.partition(":")
    return user + (":***" if has_password else "") + "@" + address


def normalise_protocol(value: int | str) -> int:
    """5 or 4 from '5', 'v5', '3.1.1', 4, 5 ... (4 is the wire number of 3.1.1)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in (4, 5):
        return value
    key = str(value).strip().lower()
    if key in _PROTOCOLS:
        return _PROTOCOLS[key]
    raise BrokerUrlError("protocol", value, "use 5 or 3.1.1")
