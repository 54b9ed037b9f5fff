"""``from nrp_core.engines.nest_json import RegisterDataPack, CreateDataPack`` in the
``NestInitFileName`` of NRP-core nest_json engines."""

from neuroloop.plugins.engines.nest_engine import DEVICES

RegisterDataPack = DEVICES.register
CreateDataPack = DEVICES.create


def GetDevMap() -> dict[str, object]:
    """The devices registered so far, by datapack name."""
    return dict(DEVICES.devices)


__all__ = ["CreateDataPack", "GetDevMap", "RegisterDataPack"]
