"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests run on a shared 2-core CI machine next to simulators and synthesis: no per-example
# deadline (timing noise is not a bug), and a health check that tolerates slow data generation.
settings.register_profile("accel", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("accel")

#: Third-party reference data (ONNX models, SCALE-Sim topologies): ``<repo>/../shared/data``.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared reference-data folder; tests needing it are skipped if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA
