"""A deterministic BLE link model in virtual time (``bluemule bench link``).

``radio`` computes air time, packets per connection event and the link's capacity;
``engine`` runs connection events; ``device`` is a Boron with flash timing running the
real :class:`~bluemule.protocol.device_session.DeviceSession`; ``model`` drives the real
:class:`~bluemule.protocol.client_session.UpdateSession`; ``baseline`` is Particle's
stop-and-wait control-request update; ``scenario`` builds releases and the report.
Assumptions and their sources: ``docs/linkmodel.md``.
"""

from bluemule.linkmodel.baseline import BaselineParams, run_stop_and_wait
from bluemule.linkmodel.device import DeviceParams, FlashDevice, NotifyMode
from bluemule.linkmodel.model import SimulationError, TransferReport, run_bluemule
from bluemule.linkmodel.radio import LinkParams, Phy
from bluemule.linkmodel.scenario import Scenario, report

__all__ = [
    "BaselineParams",
    "DeviceParams",
    "FlashDevice",
    "LinkParams",
    "NotifyMode",
    "Phy",
    "Scenario",
    "SimulationError",
    "TransferReport",
    "report",
    "run_bluemule",
    "run_stop_and_wait",
]
