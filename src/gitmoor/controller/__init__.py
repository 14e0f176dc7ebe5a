"""The controller: a driver that runs the engine for every Application."""

from gitmoor.controller.loop import Controller, run_controller

__all__ = ["Controller", "run_controller"]
