import pytest

from appliance import Appliance, write_config


@pytest.fixture
def config_path(tmp_path):
    return write_config(str(tmp_path))


@pytest.fixture
def appliance(config_path):
    running = Appliance(config_path)
    yield running
    running.stop()
