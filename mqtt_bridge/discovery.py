"""Home Assistant MQTT discovery configs (retained) for one BMS device.

Topic: <prefix>/sensor/<device_id>/<object>/config, prefix "homeassistant" by
default. Every entity reads one of the bridge's JSON topics through a
value_template that converts the firmware's integer units to units Home
Assistant validates for the device_class (V, mA, degC, %). All entities share one
``device`` block so HA groups them under one device.
"""

from bmsfw.states import STATES

from . import __version__
from .topics import STATUS_OFFLINE, STATUS_ONLINE, Topics

# object, name, source topic attr, value_template, device_class, unit, precision, extra
_ENTITIES = (
    ("voltage", "Cell voltage", "telemetry", "{{ (value_json.cell_mv / 1000) | round(3) }}", "voltage", "V", 3),
    ("current", "Cell current", "telemetry", "{{ (value_json.current_ua / 1000) | round(3) }}", "current", "mA", 3),
    ("temperature", "Cell temperature", "telemetry", "{{ (value_json.temp_dc / 10) | round(1) }}", "temperature", "°C", 1),
    ("soc", "State of charge", "state", "{{ (value_json.soc_pm / 10) | round(1) }}", "battery", "%", 1),
    # uA*ms -> uAh: / 3 600 000. HA has no device_class for charge, so none is set.
    ("lithium_inventory", "Lithium inventory", "state", "{{ (value_json.inventory_uas / 3600000) | round(3) }}", None, "µAh", 3),
    ("formation_progress", "Formation progress", "state", "{{ (value_json.formation_pm / 10) | round(1) }}", None, "%", 1),
    ("state", "BMS state", "state", "{{ value_json.state }}", "enum", None, None),
    ("cvl", "Charge voltage limit", "limits", "{{ (value_json.cvl_mv / 1000) | round(3) }}", "voltage", "V", 3),
    ("dvl", "Discharge voltage limit", "limits", "{{ (value_json.dvl_mv / 1000) | round(3) }}", "voltage", "V", 3),
    ("ccl", "Charge current limit", "limits", "{{ (value_json.ccl_ua / 1000) | round(3) }}", "current", "mA", 3),
    ("dcl", "Discharge current limit", "limits", "{{ (value_json.dcl_ua / 1000) | round(3) }}", "current", "mA", 3),
)
OBJECT_IDS = tuple(e[0] for e in _ENTITIES)


def device_block(device_id: str) -> dict:
    return {"identifiers": ["bms_twin_" + device_id], "name": "BMS " + device_id,
            "manufacturer": "bms-twin", "model": "digital-twin BMS (Li-S, plated Li under LiPON)",
            "sw_version": __version__, "serial_number": device_id}


def discovery_configs(device_id: str, prefix: str = "homeassistant") -> list:
    """[(topic, config_dict)] for every entity of the device."""
    topics = Topics(device_id)
    device = device_block(device_id)
    origin = {"name": "bms-twin", "sw_version": __version__}
    out = []
    for obj, name, source, template, device_class, unit, precision in _ENTITIES:
        unique_id = "bms_%s_%s" % (device_id, obj)
        config = {
            "name": name, "unique_id": unique_id, "object_id": unique_id,
            "state_topic": getattr(topics, source), "value_template": template,
            "availability_topic": topics.status,
            "payload_available": STATUS_ONLINE, "payload_not_available": STATUS_OFFLINE,
            "device": device, "origin": origin,
        }
        if device_class is not None:
            config["device_class"] = device_class
        if device_class == "enum":
            config["options"] = list(STATES)  # HA forbids state_class and unit on enum sensors
        else:
            config["state_class"] = "measurement"
            config["unit_of_measurement"] = unit
            config["suggested_display_precision"] = precision
        out.append(("%s/sensor/%s/%s/config" % (prefix, device_id, obj), config))
    return out
