"""What a bridge delivered, as a run's summary.json reports it (docs/mqtt.md §7).

``delivery_report(bridge)``, read after ``bridge.stop()``, gives the figures
and ``why``: None when everything the run stored reached the broker, else one
line saying what did not (never connected, messages still queued, evicted,
refused by the broker, events the controller lost). A run with a ``why`` did
not do all it was asked (exit 1, "complete": false in summary.json).

The broker is named by ``BrokerConfig.url()``: the password shows as ``***``.
"""


def delivery_report(bridge) -> dict:
    stats = bridge.stats()
    where = "%s:%d" % (bridge.config.host, bridge.config.port)
    queued = stats["outbox_rows"]
    report = {
        "broker": bridge.config.url(),
        "connected": stats.get("connects", 0) > 0,
        "connects": stats.get("connects", 0),
        "connect_failures": stats["connect_failures"],
        "last_connect_error": bridge.last_connect_error,
        "runs": list(bridge.numbering.runs),
        # Rows of the queue: events, retained state and limits, each stored before it
        # is handed to paho. stored + replayed = acknowledged + still_queued + evicted
        # + coalesced (a retained row replaced by a newer one before it was sent).
        "events_stored": stats["events_stored"],
        "stored": stats["rows_stored"],
        "replayed": stats["outbox_replayed"],
        "acknowledged": stats.get("stored_acked", 0),
        "still_queued": queued,
        "evicted": stats["outbox_evicted"],
        "coalesced": stats["outbox_coalesced"],
        "queue": bridge.queue_path,
        "refused_by_broker": stats.get("rejected_by_broker", 0) + stats["refused_other"],
        "events_lost": stats["events_lost"],
        "telemetry_published": stats["telemetry_sent"],
        "telemetry_dropped": stats.get("telemetry_dropped", 0),
        "commands": {key[len("commands_"):]: stats.get(key, 0)
                     for key in ("commands_ok", "commands_refused", "commands_rejected", "commands_duplicate",
                                 "commands_unanswerable")},
        "replies_sent": stats.get("replies_sent", 0),
        "replies_dropped": stats.get("replies_dropped", 0),
    }
    reasons = []
    if not report["connected"]:
        reasons.append("MQTT: never connected to %s (%s)" % (where, bridge.last_connect_error or "no answer"))
    if queued:
        reasons.append("MQTT: %d message(s) not acknowledged by %s, still queued in %s"
                       % (queued, where, bridge.queue_path))
    if report["evicted"]:
        reasons.append("MQTT: %d queued message(s) evicted (queue_max_rows)" % report["evicted"])
    if report["refused_by_broker"]:
        reasons.append("MQTT: %s refused %d message(s) (not authorized?)" % (where, report["refused_by_broker"]))
    if report["events_lost"]:
        reasons.append("MQTT: %d event(s) lost before they reached the bridge" % report["events_lost"])
    report["why"] = "; ".join(reasons) or None
    return report
