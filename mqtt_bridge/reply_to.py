"""Where the answer to a command may go (docs/mqtt.md §4, "Where replies go").

A command's reply goes to its own reply topic, ``bms/<id>/cmd/<name>/reply``, or,
when an MQTT 5 command names a Response Topic, to that topic if it lies under
the reply topic: ``bms/<id>/cmd/<name>/reply/<level>[/<level>…]``, 1 to
``MAX_SUFFIX_LEVELS`` levels of ``[A-Za-z0-9_.-]``, each at most
``MAX_LEVEL_CHARS`` long. Nowhere else: not the device's event, state or status
topics, not another device, not a wildcard filter (paho refuses to publish there
and raises), not an empty topic (Mosquitto disconnects a client that publishes
there). docs/acl.example grants a device this tree and no more.

A command whose Response Topic is outside it, or whose Correlation Data is
longer than ``MAX_CORRELATION_BYTES``, is refused (not run) and answered on its
own reply topic. A command on a topic no reply could be sent to (a name of more
than two levels, or of other characters) is not answered at all, only counted
and logged: its name is not a topic level the device may write.

Pure: runs on paho's network thread.
"""

import re

from .topics import Topics

# A command name one could answer: one or two levels ("charge", "formation/start"),
# the levels the example ACL grants replies under.
_ANSWERABLE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}(/[A-Za-z0-9_-]{1,32})?$")
MAX_SUFFIX_LEVELS = 4
MAX_LEVEL_CHARS = 64
_SUFFIX_LEVEL = re.compile(r"^[A-Za-z0-9_.-]{1,%d}$" % MAX_LEVEL_CHARS)
MAX_CORRELATION_BYTES = 256
SHOWN_CHARS = 80      # of a bad topic, in a reply's message or a log line


def shown(text: object) -> str:
    """A caller's string as a message may quote it: repr, cut to SHOWN_CHARS."""
    quoted = repr(text)
    return quoted if len(quoted) <= SHOWN_CHARS else quoted[:SHOWN_CHARS] + "…"


def own_reply_topic(topics: Topics, name: str) -> str | None:
    """The command's reply topic, or None if ``name`` could not be a topic level of one."""
    return topics.reply(name) if _ANSWERABLE_NAME.match(name) else None


def response_topic_error(topics: Topics, name: str, response_topic: object) -> str | None:
    """Why an MQTT 5 Response Topic may not receive this command's reply (None: it may)."""
    own = topics.reply(name)
    if response_topic == own:
        return None
    if not isinstance(response_topic, str) or not response_topic.startswith(own + "/"):
        return "Response Topic %s is not under %s/" % (shown(response_topic), own)
    levels = response_topic[len(own) + 1:].split("/")
    if len(levels) > MAX_SUFFIX_LEVELS:
        return "Response Topic %s has more than %d levels under %s/" % (shown(response_topic), MAX_SUFFIX_LEVELS, own)
    for level in levels:
        if not _SUFFIX_LEVEL.match(level):
            return ("Response Topic %s: level %s is not 1-%d characters of [A-Za-z0-9_.-]"
                    % (shown(response_topic), shown(level), MAX_LEVEL_CHARS))
    return None


def correlation_error(correlation: bytes | None) -> str | None:
    if correlation is not None and len(correlation) > MAX_CORRELATION_BYTES:
        return "Correlation Data is %d bytes, limit %d" % (len(correlation), MAX_CORRELATION_BYTES)
    return None
