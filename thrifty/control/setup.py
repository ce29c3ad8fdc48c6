"""Building the admission step from the gateway's resources."""

from __future__ import annotations

from thrifty.control.config import ControlConfig
from thrifty.control.plane import ControlPlane
from thrifty.control.step import AdmissionStep
from thrifty.control.store import ControlStore
from thrifty.gateway.steps import Resources


def admission_step(resources: Resources) -> AdmissionStep | None:
    """Return the admission step when a ``control:`` section or a master key is set."""
    config = resources.config.sections.get("control")
    if config is None:
        config = ControlConfig()
        if config.master_key() is None:
            return None
    assert isinstance(config, ControlConfig)
    writer = resources.writer
    plane = ControlPlane(
        config,
        ControlStore(resources.ledger.engine),
        resources.engine,
        unwritten=None if writer is None else writer.unwritten,
    )
    return AdmissionStep(plane, resources.config)
