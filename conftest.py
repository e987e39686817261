"""Root conftest: the harness's pytest plugin serves both scenarios/ and tests/."""

pytest_plugins = ["harness.pytest_plugin"]
