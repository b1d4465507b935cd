"""The ecosystem gates: ansible-test, ansible-galaxy build/install, role docs -- the tools a
collection's users and Galaxy's importer run on it."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: runs a real external tool chain for tens of seconds or more (never skipped)")
