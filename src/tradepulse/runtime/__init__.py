"""Wiring: the embedded runtime (one process) and, later, one service per process.

Components plug in through :data:`tradepulse.runtime.components.COMPONENTS`; see
:class:`tradepulse.runtime.component.Component`.
"""
