"""Allure results written without credentials (issue 17).

allure-pytest writes a test's result file from the exception it saw (`excinfo.exconly()`) and from the
report, and attachments as they are attached: before the end-of-run sweep (`redact.redact_tree`) could
reach them, and left as they are if the run is killed. `AllureRedaction`, an allure-commons plugin,
redacts every text of a result or container before the file logger writes it (tryfirst) and rewrites an
attachment's file right after it is written (trylast)."""
from __future__ import annotations

from pathlib import Path

import allure_commons
import attr

from utilities import redact


def redact_item(obj) -> None:
    """Every string inside an allure model object (attrs classes, lists of them) redacted in place."""
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, str):
                obj[i] = redact.redact(v)
            else:
                redact_item(v)
    elif attr.has(type(obj)):
        for f in attr.fields(type(obj)):
            v = getattr(obj, f.name)
            if isinstance(v, str):
                setattr(obj, f.name, redact.redact(v))
            elif v is not None:
                redact_item(v)


class AllureRedaction:
    def __init__(self, results_dir):
        self.results_dir = Path(results_dir)

    @allure_commons.hookimpl(tryfirst=True)
    def report_result(self, result):
        redact_item(result)

    @allure_commons.hookimpl(tryfirst=True)
    def report_container(self, container):
        redact_item(container)

    @allure_commons.hookimpl(trylast=True)
    def report_attached_data(self, body, file_name):
        redact.redact_file(self.results_dir / file_name)

    @allure_commons.hookimpl(trylast=True)
    def report_attached_file(self, source, file_name):
        redact.redact_file(self.results_dir / file_name)


def install(results_dir) -> AllureRedaction:
    plugin = AllureRedaction(results_dir)
    allure_commons.plugin_manager.register(plugin)
    return plugin


def uninstall(plugin: AllureRedaction | None) -> None:
    if plugin is not None and allure_commons.plugin_manager.is_registered(plugin):
        allure_commons.plugin_manager.unregister(plugin)
